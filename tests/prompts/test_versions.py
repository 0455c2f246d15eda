"""How a typed version is read: "v3", "V3" and "3" are version 3, anything else names a label."""

import pytest

from promptlab.errors import Invalid
from prompts.versions import reads_as_version, version_or_label, version_ref


@pytest.mark.parametrize("text, number", [("v3", 3), ("V3", 3), ("3", 3), (" v12 ", 12), ("v007", 7), ("2147483647", 2**31 - 1)])
def test_a_version_is_read_with_or_without_its_v(text, number):
    assert version_ref(text) == number
    assert version_or_label(text) == {"version": number}


@pytest.mark.parametrize("text", ["production", "staging", "latest", "v3-beta", "release-3", "vv3", "v 3", "3.0", "٣", ""])
def test_anything_else_names_a_label(text):
    assert version_ref(text) is None and not reads_as_version(text)
    assert version_or_label(text) == {"label": text.strip()}


@pytest.mark.parametrize("text", ["v0", "0", "-1", "v-1", "V000", "2147483648", "9" * 5000])
def test_a_number_that_is_no_version_is_refused_saying_why(text):
    assert reads_as_version(text)
    with pytest.raises(Invalid, match="is not a version: versions are numbered from 1"):
        version_ref(text)
