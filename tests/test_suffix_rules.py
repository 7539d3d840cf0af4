"""The firmware's suffix rule, from the seed's own examples and as properties that must always hold."""

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.cli import app
from tasks.rules.suffix import AmtVersion, InvalidValue, check_suffix, normalize_dns_name, suffix_from_certificate_cn

runner = CliRunner()


@pytest.mark.parametrize("version,amt,cert,match,rule", [
    # the seed: 3.2.1+ compares the last two labels
    ("3.2.1", "sales.contoso.com", "marketing.contoso.com", True, "last-two-labels"),
    ("11.8.50", "sales.contoso.com", "marketing.northwindtraders.com", False, "last-two-labels"),
    # blank never matches
    ("11.8.50", "", "contoso.com", False, "blank"),
    ("11.8.50", None, "contoso.com", False, "blank"),
    # earlier firmware: full suffix and unsupported by the console
    ("3.2.0", "contoso.com", "contoso.com", False, "full-suffix"),
    ("2.6.3", "sales.contoso.com", "contoso.com", False, "full-suffix"),
    # only the last two labels count, however deep
    ("11.8.50.3425", "a.b.sales.contoso.com", "contoso.com", True, "last-two-labels"),
    ("11.8.50", "contoso.com.au", "contoso.com", False, "last-two-labels"),
    ("11.8.50", "contoso", "contoso.com", False, "last-two-labels"),
])
def test_seed_examples(version, amt, cert, match, rule):
    v = check_suffix(version, amt, cert)
    assert (v.match, v.rule) == (match, rule)
    assert v.supported == AmtVersion.parse(version).compares_last_two_labels
    cert_norm = normalize_dns_name(cert)
    assert cert_norm in v.reason


def test_reason_names_both_suffixes_and_the_labels_compared():
    v = check_suffix("11.8.50", "sales.contoso.com", "marketing.northwindtraders.com")
    assert "sales.contoso.com" in v.reason and "marketing.northwindtraders.com" in v.reason
    assert "'contoso.com'" in v.reason and "'northwindtraders.com'" in v.reason


def test_version_ordering():
    assert AmtVersion.parse("3.2.1") == AmtVersion.parse("3.2.1.0")
    assert AmtVersion.parse("3.2.0.99") < AmtVersion.parse("3.2.1") < AmtVersion.parse("3.10")
    assert AmtVersion.parse(11) == AmtVersion.parse("11.0")
    for bad in ("", "3..1", "v3.2.1", "3.2.1-rc", "1.2.3.4.5.6", "3.2.1;reboot"):
        with pytest.raises(InvalidValue):
            AmtVersion.parse(bad)


@pytest.mark.parametrize("bad", ["a..b", "-a.com", "a-.com", "a_b.com", "a b.com", "x;rm.com", "$(id).com",
                                 "a" * 64 + ".com", ".".join(["abcdefghi"] * 26)])
def test_invalid_dns_names_are_refused(bad):
    with pytest.raises(InvalidValue):
        normalize_dns_name(bad)


def test_certificate_cn_minus_first_label():
    assert suffix_from_certificate_cn("AMTProv.Contoso.com.") == "contoso.com"
    with pytest.raises(InvalidValue):
        suffix_from_certificate_cn("localhost")


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
suffix = st.lists(label, min_size=1, max_size=4).map(".".join)
version = st.sampled_from(["2.6.3", "3.0.1", "3.2.0", "3.2.1", "6.2.14", "11.8.50", "16.1.25.2049"])


def _variant(name: str, draw_case: bool, dot: bool, pad: bool) -> str:
    out = name.upper() if draw_case else name
    out = out + "." if dot else out
    return f"  {out}\t" if pad else out


@given(version, suffix, suffix)
def test_symmetric_in_the_two_suffixes(v, a, b):
    assert check_suffix(v, a, b).match == check_suffix(v, b, a).match


@given(version, suffix, suffix, st.booleans(), st.booleans(), st.booleans())
def test_invariant_under_case_trailing_dot_and_whitespace(v, a, b, case, dot, pad):
    assert check_suffix(v, _variant(a, case, dot, pad), b) == check_suffix(v, a, b)


@given(version, suffix)
def test_a_suffix_matches_itself_exactly_when_supported(v, a):
    verdict = check_suffix(v, a, a)
    assert verdict.match == AmtVersion.parse(v).compares_last_two_labels


@given(suffix, suffix, label)
def test_only_the_last_two_labels_matter_from_3_2_1(a, b, extra):
    assume(len(a.split(".")) >= 2)
    assert check_suffix("3.2.1", f"{extra}.{a}", b).match == check_suffix("3.2.1", a, b).match


@given(version, suffix)
def test_blank_never_matches(v, cert):
    assert not check_suffix(v, "", cert).match


def test_cli_exit_codes_and_json():
    ok = runner.invoke(app, ["suffix-check", "--amt-version", "11.8.50", "--amt-suffix", "sales.contoso.com",
                             "--cert-suffix", "marketing.contoso.com", "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {**check_suffix("11.8.50", "sales.contoso.com", "marketing.contoso.com").as_dict()}
    assert set(json.loads(ok.stdout)) == {"match", "rule", "supported", "reason"}
    for args, code in [
        (["--amt-version", "11.8.50", "--amt-suffix", "fabrikam.com", "--cert-suffix", "contoso.com"], 1),
        (["--amt-version", "11.8.50", "--amt-suffix", "", "--cert-suffix", "contoso.com"], 1),
        (["--amt-version", "3.1", "--amt-suffix", "contoso.com", "--cert-suffix", "contoso.com"], 1),
        (["--amt-version", "x", "--amt-suffix", "contoso.com", "--cert-suffix", "contoso.com"], 2),
        (["--amt-version", "11.8", "--amt-suffix", "bad;name", "--cert-suffix", "contoso.com"], 2),
    ]:
        assert runner.invoke(app, ["suffix-check", *args]).exit_code == code, args
