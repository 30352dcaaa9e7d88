"""Token counts as people write them, decimal and binary; bad ones named in one line."""
import pytest

from mixer.core.errors import MixerError
from mixer.core.units import parse_count


def test_decimal_and_binary_suffixes():
    assert parse_count("30M") == 30_000_000 and parse_count("512k") == 512_000 and parse_count("2e6") == 2_000_000
    assert parse_count("32Mi", "--shard-tokens") == 1 << 25 and parse_count("1.5Ki") == 1536
    assert parse_count("1,000") == 1000 and parse_count(7) == 7


@pytest.mark.parametrize("text, needle", [("Mi", "not a count"), ("1.5", "whole number"), ("0", "positive"),
                                          ("-3M", "positive"), ("abc", "not a count")])
def test_bad_counts(text, needle):
    with pytest.raises(MixerError, match=needle):
        parse_count(text, "--tokens")
