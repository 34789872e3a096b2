"""steerable.extras: an optional module imported, or one line naming the extra that installs it."""

import json

import pytest

from steerable.extras import require


def test_require_imports_or_names_the_extra_in_one_line():
    assert require("json", "none", "reading JSON") is json
    with pytest.raises(ImportError) as e:
        require("steerable_no_such_module", "search", "the thing")
    assert str(e.value) == "the thing needs the 'search' extra: pip install 'steerable[search]'"
