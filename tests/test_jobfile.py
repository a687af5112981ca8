"""Job file validation: every problem named with file, line and key; nothing half-loaded."""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import pytest
import yaml

from batchthumb import jobfile
from batchthumb.errors import JobFileError, Problem
from batchthumb.files import AUTH_FILE_LIMIT, describe
from batchthumb.images import ImageProblem, inspect_image, read_image
from batchthumb.jobfile import YamlItems, load_auth, load_job
from batchthumb.model import (
    AkSkAuth,
    IamAuth,
    LocalImage,
    TokenAuth,
    field_problem,
)
from tests.imagedata import png

P1 = "919bb351ef424e2daaf3dd80c179fae9"
P2 = "0792b7d26cb74bd799cbae80063dc74a"
PLAN = "bf56512ab4e544c29d03d068711ca56a"
PLAN2 = "cf56512ab4e544c29d03d068711ca56b"
URL1 = f"/v1/upload/{P1}/202506/1749730526922581391.png"


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(JobFileError) as info:
        load_job(path)
    return [str(p) for p in info.value.problems]


def test_a_full_job_loads_with_defaults_merged_and_lines_kept(tmp_path: Path) -> None:
    """Settings are read, defaults fill each item, and each item remembers its line."""
    path = write(
        tmp_path,
        f"""\
endpoint: https://projectman-ext.cn-north-4.myhuaweicloud.com
concurrency: 4
rate: 2.5
burst: 2
retries: 3
timeout: 10
report: out/results.jsonl
defaults:
  project_id: {P1}
items:
  - plan_id: {PLAN}
    img_url: {URL1}
  - {{plan_id: {PLAN2}, img_url: {URL1}}}
""",
    )
    job = load_job(path)
    s = job.settings
    assert (s.endpoint, s.concurrency, s.rate, s.burst, s.retries, s.timeout) == (
        "https://projectman-ext.cn-north-4.myhuaweicloud.com",
        4,
        2.5,
        2,
        3,
        10.0,
    )
    assert job.report_path == tmp_path / "out/results.jsonl"
    assert [(i.project_id, i.plan_id, i.line) for i in job.items] == [
        (P1, PLAN, 11),
        (P1, PLAN2, 13),
    ]
    assert job.warnings == ()


def test_only_items_is_required_and_the_rest_has_defaults(tmp_path: Path) -> None:
    """A job with just items runs with documented defaults and a report beside the job."""
    path = write(tmp_path, f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n")
    job = load_job(path)
    assert (job.settings.concurrency, job.settings.rate, job.settings.burst) == (8, 0.0, 1)
    assert job.report_path == tmp_path / "job.results.jsonl"


def test_region_gives_the_documented_endpoint(tmp_path: Path) -> None:
    """`region: cn-north-4` means the projectman-ext endpoint of that region."""
    path = write(
        tmp_path,
        f"region: cn-north-4\nitems:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n",
    )
    assert load_job(path).settings.endpoint == "https://projectman-ext.cn-north-4.myhuaweicloud.com"


def test_an_endpoint_loses_its_final_slash_and_nothing_else(tmp_path: Path) -> None:
    """`endpoint: https://HOST.BOX/` is used as https://HOST.BOX (paths are joined to it)."""
    path = write(tmp_path, "endpoint: https://HOST.BOX/\n" + ITEMS)
    assert load_job(path).settings.endpoint == "https://HOST.BOX"


def test_all_problems_are_reported_at_once_with_file_line_and_key(tmp_path: Path) -> None:
    """Unknown keys, wrong types, bad ids, bad URLs and missing fields each get their own line."""
    path = write(
        tmp_path,
        f"""\
concurrency: 0
rate: fast
colour: blue
items:
  - project_id: short
    plan_id: {PLAN}
    img_url: {URL1}
  - project_id: {P1}
    plan_id: {PLAN2}
    img_url: /v2/elsewhere.png
  - project_id: {P1}
    img_url: {URL1}
  - project_id: {P1}
    plan_id: [1, 2]
    img_url: {URL1}
    extra: 1
""",
    )
    p = str(path)
    assert problems(path) == [
        f"{p}:1: concurrency: must be at least 1, not 0",
        f"{p}:2: rate: must be a number, not the text 'fast'",
        f"{p}:3: colour: unknown key (known: auth, backoff, backup, breaker, burst, concurrency, defaults, endpoint, history, items, items_file, lock_wait, log_file, log_json, max_answer_mb, max_duration, max_list_pages, progress, quiet, rate, region, report, retries, snapshot, timeout, verbose)",
        f"{p}:5: items[0].project_id: must be 32 letters or digits (the CodeArts Req project id)",
        f"{p}:10: items[1].img_url: must look like /v1/upload/<id>/<yyyymm>/<name>.<ext>",
        f"{p}:11: items[2].plan_id: missing",
        f"{p}:14: items[3].plan_id: must be a text value, not a list",
        f"{p}:16: items[3].extra: unknown key (known: project_id, plan_id, img_url, image)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("items: []\n", "1: items: is empty; list at least one plan"),
        ("items: plan\n", "1: items: must be a list of plans, not the text 'plan'"),
        ("rate: 1\n", "1: items: missing; list the plans whose thumbnails to set"),
        ("- 1\n- 2\n", "1: must be a mapping, not a list"),
        ("items: [1]\n", "1: items[0]: must be a mapping, not 1"),
        ("items: &a plan\n", f"1: items: {jobfile._ANCHORS}"),
        (
            f"items: &a [{{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}]\n",
            f"1: items: {jobfile._ANCHORS}",
        ),
        (
            f"items: [{{project_id: {P1}, plan_id: {PLAN}}}]\n",
            "1: items[0].img_url: missing (or give `image:` a local file)",
        ),
        ("retries: -1\nitems: [1]\n", "1: retries: must be at least 0, not -1"),
        ("timeout: 0\nitems: [1]\n", "1: timeout: must be greater than 0, not 0"),
        ("concurrency: true\nitems: [1]\n", "1: concurrency: must be a whole number, not true"),
        ("rate: 1\nrate: 2\nitems: [1]\n", "2: rate: appears twice"),
        ("region: mars\nitems: [1]\n", "1: region: 'mars' is not a region name like cn-north-4"),
        (
            "endpoint: ftp://x\nitems: [1]\n",
            "1: endpoint: 'ftp://x' is not a base URL like https://host[:port]",
        ),
        (
            "defaults: {plan_id: x}\nitems: [1]\n",
            "1: defaults.plan_id: unknown key (known: image, img_url, project_id)",
        ),
    ],
)
def test_each_bad_shape_has_a_clear_message(tmp_path: Path, text: str, expected: str) -> None:
    """Each structural mistake produces one precise message."""
    path = write(tmp_path, text)
    assert f"{path}:{expected}" in problems(path)


def test_the_same_plan_twice_names_the_first_line(tmp_path: Path) -> None:
    """A duplicated (project_id, plan_id) is refused, pointing at where it first appears."""
    line = f"  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
    path = write(tmp_path, "items:\n" + line + line)
    assert problems(path) == [f"{path}:3: items[1]: plan {PLAN} is already listed at line 2"]


def test_the_same_plan_id_in_two_projects_is_fine(tmp_path: Path) -> None:
    """Identity is (project_id, plan_id), not plan_id alone."""
    url2 = f"/v1/upload/{P2}/202506/1.png"
    path = write(
        tmp_path,
        f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
        f"  - {{project_id: {P2}, plan_id: {PLAN}, img_url: {url2}}}\n",
    )
    assert len(load_job(path).items) == 2


def test_digit_only_ids_are_kept_as_written(tmp_path: Path) -> None:
    """An id made only of digits (YAML would read an int) keeps its leading zeros."""
    digits = "0" + "1" * 31
    path = write(
        tmp_path, f"items:\n  - {{project_id: {P1}, plan_id: {digits}, img_url: {URL1}}}\n"
    )
    assert next(iter(load_job(path).items)).plan_id == digits


def test_not_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    """A YAML syntax error names the line where the parser gave up."""
    path = write(tmp_path, "items:\n  - plan_id: [unclosed\n  - x: y\n")
    [message] = problems(path)
    assert message.startswith(f"{path}:3: not valid YAML")


def test_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are named by line, not a UnicodeDecodeError traceback."""
    path = tmp_path / "job.yaml"
    path.write_bytes(b"items:\n  - plan_id: caf\xe9\n")
    assert problems(path) == [f"{path}:2: not UTF-8 text (byte 23)"]


def test_an_empty_file_says_what_a_job_needs(tmp_path: Path) -> None:
    """An empty job file is a problem, not a crash."""
    path = write(tmp_path, "")
    assert problems(path) == [f"{path}: the file is empty; a job needs at least `items:`"]


def test_a_missing_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """A job path that does not exist is reported like any other job problem."""
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: no such file"]


def test_alias_bombs_are_refused_without_expanding(tmp_path: Path) -> None:
    """A billion-laughs document is refused at once; aliases are not allowed at all."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 9):
        prev = chr(ord("a") + n - 1)
        name = chr(ord("a") + n)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("items: [*i, *i]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    found = problems(path)
    assert f"{path}:1: a: unknown key" in found[0]
    assert any("YAML anchors and aliases are not allowed" in p for p in found)


def test_an_aliased_item_is_refused(tmp_path: Path) -> None:
    """Reusing an item through an anchor is refused rather than silently duplicated: the anchor
    and the alias each named at their own line."""
    path = write(
        tmp_path,
        f"items:\n  - &x {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n  - *x\n",
    )
    assert problems(path) == [
        f"{path}:2: items[0]: {jobfile._ANCHORS}",
        f"{path}:3: items[1]: {jobfile._ANCHORS}",
    ]


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    """YAML merge keys (`<<`) are refused: they are aliases in disguise."""
    path = write(
        tmp_path, f"base: &b {{project_id: {P1}}}\nitems:\n  - <<: *b\n    plan_id: {PLAN}\n"
    )
    assert any("merge keys are not allowed" in p for p in problems(path))


def test_img_url_with_another_id_than_the_project_is_accepted_without_a_warning(
    tmp_path: Path,
) -> None:
    """What the img_url's middle part holds is unproven (the upload examples answer another
    id than the request's project), so an img_url naming another id is neither an error nor
    a warning."""
    path = write(tmp_path, f"items:\n  - {{project_id: {P2}, plan_id: {PLAN}, img_url: {URL1}}}\n")
    job = load_job(path)
    assert job.warnings == ()
    assert [item.img_url for item in job.items] == [URL1]


@pytest.mark.parametrize(
    ("name", "length", "ok"),
    [(n, k, k == 32) for n in ("plan_id", "project_id") for k in (31, 32, 33)],
)
def test_ids_are_exactly_32_letters_or_digits(name: str, length: int, ok: bool) -> None:
    """project_id and plan_id take exactly 32 letters or digits: 31 or 33 is a problem."""
    assert (
        field_problem(
            name, "a1" * 16 + "b" * (length - 32) if length > 32 else ("a1" * 16)[:length]
        )
        is None
    ) is ok


@pytest.mark.parametrize(
    "img_url",
    [
        "/v1/upload/a/202506/1.png",  # 1 character in the id slot, as the download page allows
        "/v1/upload/0792b7d26cb74bd799cbae80063dc74a/202006/1591339394752881984.gif",
        f"/v1/upload/{'z' * 32}/202506/{'9' * 64}.jpeg",  # the bounds themselves
        "/v1/upload/ABC123/202506/x.WEBP",
    ],
)
def test_img_url_accepts_any_id_the_documented_pattern_allows(img_url: str) -> None:
    """1 to 32 letters or digits in the middle part, any name, a letters-only extension."""
    assert field_problem("img_url", img_url) is None


@pytest.mark.parametrize(
    "img_url",
    [
        "/v1/upload//202506/1.png",  # no id
        f"/v1/upload/{'a' * 33}/202506/1.png",  # 33 characters
        "/v1/upload/abc/20250/1.png",  # 5 digits of yyyymm
        "/v1/upload/abc/2025/1.png",  # 4 digits of yyyymm
        "/v1/upload/abc/2025061/1.png",  # 7 digits
        "/v1/upload/abc/202506/1.png/x",  # not anchored at the end
        "x/v1/upload/abc/202506/1.png",  # not anchored at the start
        "/v1/upload/abc/202506/1png",  # the dot is a dot, not any character
        f"/v1/upload/abc/202506/{'1' * 65}.png",  # name bounded
        "/v1/upload/abc/202506/1.abcdefghi",  # extension bounded
        "/v1/upload/a-b/202506/1.png",  # only letters and digits in the id
    ],
)
def test_img_url_stays_anchored_and_bounded(img_url: str) -> None:
    """The loosened pattern is still anchored, bounded, and exact about yyyymm's six digits."""
    assert field_problem("img_url", img_url) is not None


ITEMS = f"""\
items:
  - project_id: {P1}
    plan_id: {PLAN}
    img_url: {URL1}
"""


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("auth: {token_env: MY_TOKEN}\n", TokenAuth(env="MY_TOKEN")),
        (
            "auth:\n  iam: {domain: acme, user: bot, password_env: PW, project: cn-north-4}\n",
            IamAuth(domain="acme", user="bot", password_env="PW", project="cn-north-4"),
        ),
        ("auth:\n  aksk:\n", AkSkAuth()),
        ("auth: {aksk: {ak_env: MY_AK, sk_env: MY_SK}}\n", AkSkAuth("MY_AK", "MY_SK")),
    ],
)
def test_auth_section_is_read(tmp_path: Path, auth: str, expected: object) -> None:
    """Each way of authenticating is read into its config value."""
    assert load_job(write(tmp_path, auth + ITEMS)).auth == expected


def test_token_file_is_relative_to_the_job_file(tmp_path: Path) -> None:
    """token_file, like every path in a job, is taken relative to the job file."""
    job = load_job(write(tmp_path, "auth: {token_file: secrets/token}\n" + ITEMS))
    assert job.auth == TokenAuth(file=tmp_path / "secrets/token")


def test_literal_secrets_are_refused_saying_where_they_belong(tmp_path: Path) -> None:
    """A password, sk or token written into the job is refused; the value is never echoed."""
    path = write(
        tmp_path,
        """\
token: tok-SENTINEL-1
auth:
  iam:
    domain: acme
    user: bot
    password: pw-SENTINEL-2
  aksk: {sk: sk-SENTINEL-3}
"""
        + ITEMS,
    )
    found = problems(path)
    assert found == [
        f"{path}:1: token: secrets never go in a job file; use `auth: {{token_env: NAME}}` or `auth: {{token_file: PATH}}`",
        f"{path}:6: auth.iam.password: secrets never go in a job file; put the password in an environment variable and name it with `auth: {{iam: {{password_env: NAME}}}}`",
        f"{path}:7: auth.aksk.sk: secrets never go in a job file; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or name other variables with ak_env/sk_env), or use the SDK file ~/.huaweicloud/credentials (mode 0600)",
        f"{path}:3: auth: give one of token_env, token_file, iam, aksk, not several",
    ]
    assert "SENTINEL" not in "\n".join(found)


def test_a_secret_pasted_as_a_variable_name_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    """token_env holding what looks like a token (not a variable name) is refused, unprinted."""
    path = write(tmp_path, "auth: {token_env: MIIsecret-SENTINEL+/=}\n" + ITEMS)
    [found] = problems(path)
    assert found.startswith(f"{path}:1: auth.token_env: must be the NAME of an environment")
    assert "SENTINEL" not in found


def test_iam_without_required_keys_names_them(tmp_path: Path) -> None:
    """An iam section missing user and password_env says so, key by key."""
    path = write(tmp_path, "auth:\n  iam: {domain: acme}\n" + ITEMS)
    assert problems(path) == [
        f"{path}:2: auth.iam.user: missing",
        f"{path}:2: auth.iam.password_env: missing",
    ]


def test_auth_file_holds_only_an_auth_section(tmp_path: Path) -> None:
    """--auth FILE reads the auth: section and refuses anything else in it."""
    good = write(tmp_path, "auth: {aksk: {}}\n", "auth.yaml")
    assert load_auth(good) == AkSkAuth()
    bad = write(tmp_path, "auth: {aksk: {}}\nitems: []\n", "bad.yaml")
    with pytest.raises(JobFileError, match="only an `auth:` section"):
        load_auth(bad)


def test_defaults_after_items_still_fill_them(tmp_path: Path) -> None:
    """`defaults:` written below `items:` applies to the items as if it came first."""
    path = write(
        tmp_path,
        f"items:\n  - {{plan_id: {PLAN}, img_url: {URL1}}}\ndefaults:\n  project_id: {P1}\n",
    )
    assert [(i.project_id, i.plan_id, i.line) for i in load_job(path).items] == [(P1, PLAN, 2)]


def test_item_problems_follow_the_other_sections_wherever_items_stands(tmp_path: Path) -> None:
    """Problems come in the same order whether `items:` is written first or last."""
    path = write(tmp_path, f"items:\n  - {{plan_id: {PLAN}}}\ncolour: blue\n")
    assert [p.split(": ", 2)[1] for p in problems(path)] == [
        "colour",
        "items[0].project_id",
        "items[0].img_url",
    ]


def test_an_anchor_or_alias_of_a_single_value_is_refused(tmp_path: Path) -> None:
    """Anchors are refused where they stand, even on a plain value never aliased as a whole."""
    path = write(
        tmp_path,
        f"defaults: {{project_id: &p {P1}}}\nitems:\n"
        f"  - {{project_id: *p, plan_id: {PLAN}, img_url: {URL1}}}\n",
    )
    assert problems(path) == [
        f"{path}:1: defaults: YAML anchors and aliases are not allowed in job files",
        f"{path}:3: items[0].project_id: YAML anchors and aliases are not allowed in job files",
    ]


def test_a_second_document_is_not_valid_yaml(tmp_path: Path) -> None:
    """A job file holds one YAML document; a second one is refused with its line."""
    path = write(
        tmp_path,
        f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n---\nrate: 1\n",
    )
    assert problems(path) == [f"{path}:3: not valid YAML: but found another document"]


def plan(n: int) -> str:
    return f"{n:032x}"


def test_a_small_job_keeps_its_items_and_a_large_one_reads_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to KEEP_IN_MEMORY items are kept; past it, each iteration reads the file again."""
    path = write(
        tmp_path,
        f"defaults: {{project_id: {P1}}}\nitems:\n"
        + "".join(f"  - {{plan_id: {plan(n)}, img_url: {URL1}}}\n" for n in range(3)),
    )
    monkeypatch.setattr(jobfile, "KEEP_IN_MEMORY", 3)
    assert isinstance(load_job(path).items, tuple)
    monkeypatch.setattr(jobfile, "KEEP_IN_MEMORY", 2)
    assert isinstance(load_job(path).items, YamlItems)


def test_inline_items_are_read_again_from_the_file_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large `items:` is kept as the file, not as items: each iteration reads it again."""
    monkeypatch.setattr(jobfile, "KEEP_IN_MEMORY", 0)
    path = write(
        tmp_path,
        f"defaults: {{project_id: {P1}}}\nitems:\n"
        + "".join(f"  - {{plan_id: {plan(n)}, img_url: {URL1}}}\n" for n in range(3)),
    )
    job = load_job(path)
    assert isinstance(job.items, YamlItems)
    assert not hasattr(job.items, "__getitem__")
    expected = [(P1, plan(n), URL1, n + 3) for n in range(3)]
    for _ in range(2):
        assert [(i.project_id, i.plan_id, i.img_url, i.line) for i in job.items] == expected
    assert (len(job.items), job.projects) == (3, frozenset({P1}))


def test_validating_inline_items_keeps_nothing_per_item_but_a_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past KEEP_IN_MEMORY, Python memory stays under 40 bytes an item (an Item is ~300)."""
    keep, count = 100, 5_000  # enough to dwarf the fixed cost; small, as mutmut runs it often

    def items_job(name: str, items: int) -> Path:
        lines = (
            f'  - {{project_id: "{P1}", plan_id: "{plan(n)}", img_url: "{URL1}"}}\n'
            for n in range(items)
        )
        return write(tmp_path, "items:\n" + "".join(lines), name)

    monkeypatch.setattr(jobfile, "KEEP_IN_MEMORY", keep)
    path = items_job("job.yaml", count)
    load_job(items_job("warm.yaml", keep + 1))  # warms imports and caches on the same path
    tracemalloc.start()
    try:
        job = load_job(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(job.items) == count
    assert peak < 40 * count


def test_a_duplicate_is_reported_in_file_order_among_other_problems(tmp_path: Path) -> None:
    """The duplicates pass merges its problems with the others by line, as one pass would."""
    good = f"  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
    path = write(tmp_path, "items:\n" + good + "  - {plan_id: x}\n" + good + "  - {plan_id: y}\n")
    assert [p.split(": ", 2)[:2] for p in problems(path)] == [
        [f"{path}:3", "items[1].plan_id"],
        [f"{path}:4", "items[2]"],
        [f"{path}:5", "items[3].plan_id"],
    ]


def test_thousands_of_bad_items_are_a_hundred_problems_and_a_count(tmp_path: Path) -> None:
    """Hostile input is bounded: 150 bad items give 100 problems and how many more there are,
    counted apart from the problems of the other sections."""
    path = write(tmp_path, "rate: -1\nitems:\n" + "  - {plan_id: x}\n" * 150)
    found = problems(path)
    assert len(found) == 102
    assert found[0] == f"{path}:1: rate: must be 0 or more, not -1"
    assert found[1].startswith(f"{path}:3: items[0].plan_id: must be 32")
    with pytest.raises(JobFileError) as info:
        load_job(path)
    assert info.value.problems[-1] == Problem(str(path), 0, "items", "and 50 more problems")


def test_a_duplicate_past_the_first_hundred_problems_is_counted_with_the_rest(
    tmp_path: Path,
) -> None:
    """The count of problems left out adds those of the duplicates pass to the items' own."""
    good = f"  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
    path = write(tmp_path, "items:\n" + good * 2 + "  - {plan_id: x}\n" * 150)
    found = problems(path)
    assert len(found) == 101
    assert found[0] == f"{path}:3: items[1]: plan {PLAN} is already listed at line 2"
    assert found[-1] == f"{path}: items: and 51 more problems"


def test_a_character_split_across_read_chunks_is_fine_and_a_bad_byte_names_its_line(
    tmp_path: Path,
) -> None:
    """The file is checked as UTF-8 chunk by chunk: a split character is not an error."""
    lines = [b"items:\n"]
    for n in range(3000):  # some 200 KB: many chunk boundaries fall inside a character
        note = "\N{EURO SIGN}" * (n % 7 + 1)
        lines.append(
            f"  - {{project_id: {P1}, plan_id: {plan(n)}, img_url: {URL1}}}  # {note}\n".encode()
        )
    path = tmp_path / "job.yaml"
    path.write_bytes(b"".join(lines))
    assert len(load_job(path).items) == 3000
    lines[2500] = lines[2500].replace(b"# ", b"# caf\xe9 ")
    data = b"".join(lines)
    path.write_bytes(data)
    offset = data.index(b"caf\xe9") + 3
    assert problems(path) == [f"{path}:2501: not UTF-8 text (byte {offset})"]


PARSER_CASES = [
    f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
    f"  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n",
    f"concurrency: 0\nitems:\n  - project_id: short\n    plan_id: {PLAN}\n    extra: 1\n"
    f"  - [1]\n  - {{project_id: &a {P1}, plan_id: *a}}\n",
    f"items:\n  - {{plan_id: {PLAN}, img_url: {URL1}}}\ndefaults:\n  project_id: {P2}\n",
    "items:\n  - plan_id: [unclosed\n  - x: y\n",
    "items: []\n---\nrate: 1\n",
    "# " + "\N{EURO SIGN}" * 20 + "\n" * 3 + "rate: 1\x01\n",  # a control char after 3-byte ones
]


@pytest.mark.parametrize("text", PARSER_CASES)
def test_libyaml_and_the_pure_parser_give_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """libyaml is used when present; without it the same problems come at the same lines."""
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    path = write(tmp_path, text)

    def outcome() -> list[str]:
        try:
            job = load_job(path)
        except JobFileError as exc:
            # Syntax errors are worded by each parser in its own way; where they are is the same.
            return [str(p) if "not valid YAML" not in str(p) else str(p.line) for p in exc.problems]
        return [f"{i.project_id} {i.plan_id} {i.line}" for i in job.items] + [
            str(w) for w in job.warnings
        ]

    assert jobfile._Loader is yaml.CSafeLoader
    with_libyaml = outcome()
    monkeypatch.setattr(jobfile, "_Loader", yaml.SafeLoader)
    assert outcome() == with_libyaml


def test_an_empty_token_file_is_a_problem_not_a_fall_back_to_the_environment(
    tmp_path: Path,
) -> None:
    """`token_file: ''` names no file: refused, instead of silently using $BATCHTHUMB_TOKEN."""
    for auth in ("auth: {token_file: ''}\n", "auth: {aksk: {credentials_file: ''}}\n"):
        path = write(tmp_path, auth + ITEMS)
        key = "auth.token_file" if "token_file" in auth else "auth.aksk.credentials_file"
        assert problems(path) == [f"{path}:1: {key}: is empty; give a path"]


ENV_ADVICE = (
    "must be the NAME of an environment variable (capital letters, digits and _, "
    "e.g. BATCHTHUMB_TOKEN), not a secret; the value goes in the environment"
)


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ("auth: {}", "auth: empty; give one of token_env, token_file, iam, aksk"),
        ("auth: {colour: x}", "auth.colour: unknown key (known: token_env, token_file, iam, aksk)"),
        ("auth: {token_env: ''}", f"auth.token_env: {ENV_ADVICE}"),
        ("auth: {token_env: [A]}", f"auth.token_env: {ENV_ADVICE}"),
        (
            "auth: {iam: {domain: acme, user: bot, password_env: PW, endpoint: 'ftp://x'}}",
            "auth.iam.endpoint: 'ftp://x' is not a base URL like https://host[:port]",
        ),
        (
            "auth: {iam: {domain: acme, user: bot, password_env: PW, colour: red}}",
            "auth.iam.colour: unknown key (known: endpoint, domain, user, password_env, project)",
        ),
        (
            "auth: {iam: {domain: acme, user: bot, password_env: lower}}",
            f"auth.iam.password_env: {ENV_ADVICE}",
        ),
        (
            "auth: {iam: {domain: acme, user: bot, password_env: PW, passwd: x}}",
            "auth.iam.passwd: secrets never go in a job file; name an environment variable with `password_env:` instead",
        ),
        ("auth: {iam: {user: bot, password_env: PW}}", "auth.iam.domain: missing"),
        ("auth: {iam: {domain: acme, password_env: PW}}", "auth.iam.user: missing"),
        ("auth: {iam: {domain: '', user: bot, password_env: PW}}", "auth.iam.domain: missing"),
        ("auth: {iam: [x]}", "auth.iam: must be a mapping, not a list"),
        (
            "auth: {aksk: {colour: red}}",
            "auth.aksk.colour: unknown key (known: ak_env, sk_env, credentials_file, iam_endpoint, project)",
        ),
        ("auth: {aksk: {ak_env: 'bad name'}}", f"auth.aksk.ak_env: {ENV_ADVICE}"),
        (
            "auth: {aksk: {ak: AKxx}}",
            "auth.aksk.ak: secrets never go in a job file; set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or name other variables with ak_env/sk_env), or use the SDK file ~/.huaweicloud/credentials (mode 0600)",
        ),
        (
            "auth: {token: x}",
            "auth.token: secrets never go in a job file; use `auth: {token_env: NAME}` or `auth: {token_file: PATH}`",
        ),
        ("auth: {token_file: [x]}", "auth.token_file: must be a text value, not a list"),
        (
            "auth: {iam: {domain: [x], user: bot, password_env: PW}}",
            "auth.iam.domain: must be a text value, not a list",
        ),
        (
            "auth: {aksk: {iam_endpoint: 'ftp://x'}}",
            "auth.aksk.iam_endpoint: 'ftp://x' is not a base URL like https://host",
        ),
        (
            "auth: {aksk: {iam_endpoint: [x]}}",
            "auth.aksk.iam_endpoint: must be a text value, not a list",
        ),
        ("auth: {aksk: {project: [x]}}", "auth.aksk.project: must be a text value, not a list"),
        ("auth: {aksk: 5}", "auth.aksk: must be a mapping, not 5"),
        ("auth: {aksk: []}", "auth.aksk: must be a mapping, not a list"),
        ("auth: [x]", "auth: must be a mapping, not a list"),
        ("auth: 5", "auth: must be a mapping, not 5"),
    ],
)
def test_each_mistake_in_an_auth_section_is_one_problem_naming_its_key(
    tmp_path: Path, auth: str, problem: str
) -> None:
    """Unknown keys, bad variable names and endpoints, missing or misplaced values: one line each."""
    path = write(tmp_path, auth + "\n" + ITEMS)
    assert problems(path) == [f"{path}:1: {problem}"]


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            "auth: {iam: {domain: acme, user: bot, password_env: PW, endpoint: 'https://iam.example.com/'}}",
            IamAuth(
                domain="acme", user="bot", password_env="PW", endpoint="https://iam.example.com"
            ),
        ),
        (
            "auth: {iam: {domain: acme, user: bot/, password_env: PW, endpoint: 'https://IAM.BOX/'}}",
            IamAuth(domain="acme", user="bot/", password_env="PW", endpoint="https://IAM.BOX"),
        ),
        (
            "auth: {aksk: {iam_endpoint: 'https://IAM.BOX/', project: p1}}",
            AkSkAuth(iam_endpoint="https://IAM.BOX", project="p1"),
        ),
        ("auth: {aksk: {ak_env: MY_AK}}", AkSkAuth(ak_env="MY_AK")),
        ("auth: {aksk: {sk_env: MY_SK}}", AkSkAuth(sk_env="MY_SK")),
    ],
)
def test_auth_values_left_out_take_their_defaults(
    tmp_path: Path, auth: str, expected: object
) -> None:
    """An endpoint loses its final "/" (and only that); an aksk key left out keeps the SDK's
    variable name; other values are kept as written."""
    assert load_job(write(tmp_path, auth + "\n" + ITEMS)).auth == expected


def test_an_aksk_credentials_file_is_relative_to_the_job(tmp_path: Path) -> None:
    """auth.aksk.credentials_file is taken relative to the job file, like every path in it."""
    job = load_job(write(tmp_path, "auth: {aksk: {credentials_file: creds}}\n" + ITEMS))
    assert job.auth == AkSkAuth(credentials_file=tmp_path / "creds")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "auth: {aksk: {}}\npassword: x\n",
            ":2: password: secrets never go in a job file; put the password in an environment variable and name it with `auth: {iam: {password_env: NAME}}`",
        ),
        ("colour: x\n", ":1: colour: unknown key; this file holds only an `auth:` section"),
        ("", ": auth: missing; this file must hold an `auth:` section"),
        ("auth: {token_env: A}\nauth: {token_env: B}\n", ":2: auth: appears twice"),
        ("- a\n", ":1: must be a mapping, not a list"),
        ("auth:\n", ":1: auth: must be a mapping, not empty"),
    ],
)
def test_an_auth_file_with_anything_but_one_auth_section_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """--auth FILE: other keys, no auth, two auth sections, or a non-mapping: each named."""
    path = write(tmp_path, text, "auth.yaml")
    with pytest.raises(JobFileError) as info:
        load_auth(path)
    assert [str(p) for p in info.value.problems] == [f"{path}{problem}"]


LONG = "1." + "0" * 60 + "1"  # a number whose message quotes only its first 40 characters


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rate: -1", "rate: must be 0 or more, not -1"),
        ("rate: .inf", "rate: must be a finite number, not .inf"),
        ("rate: .nan", "rate: must be a finite number, not .nan"),
        ("rate: 1.0e+999", "rate: must be 0 or more, not 1.0e+999"),
        ("rate: 1_000_000", "rate: must be at most 10,000, not 1_000_000"),
        ("rate: 10000.5", "rate: must be at most 10,000, not 10000.5"),
        ("rate: abc", "rate: must be a number, not the text 'abc'"),
        ("rate: [1]", "rate: must be a number, not a list"),
        ("timeout: 0", "timeout: must be greater than 0, not 0"),
        ("timeout: -0.5", "timeout: must be greater than 0, not -0.5"),
        (
            "endpoint: https://a.example\nregion: cn-north-4",
            "region: give either `endpoint` or `region`, not both",
        ),
        ("quiet: true\nverbose: true", "--quiet and --verbose do not go together; pick one"),
        ("items_file: [x]", "items_file: must be a text value, not a list"),
        ("max_answer_mb: 0", "max_answer_mb: must be greater than 0, not 0"),
        (f"rate: -{LONG}", f"rate: must be 0 or more, not -{LONG[:39]}"),
        (f"rate: 1000{LONG}", f"rate: must be at most 10,000, not 1000{LONG[:36]}"),
        ("rate: {a: 1}", "rate: must be a number, not a mapping"),
        ("max_duration: 0", "max_duration: must be greater than 0, not 0"),
        ("max_duration: -1.5", "max_duration: must be greater than 0, not -1.5"),
        ("max_duration: 604801", "max_duration: must be at most 604,800, not 604801"),
        ("max_duration: [1]", "max_duration: must be a text value, not a list"),
        ("max_duration: soon", "max_duration: 'soon' is not a duration like 90s, 30m or 2h"),
        (
            "defaults: {colour: x}",
            "defaults.colour: unknown key (known: image, img_url, project_id)",
        ),
        (
            "defaults: {img_url: /v1/upload/x.png}",
            "defaults.img_url: must look like /v1/upload/<id>/<yyyymm>/<name>.<ext>",
        ),
        ("defaults: []", "defaults: must be a mapping, not a list"),
        ("defaults: {project_id: [x]}", "defaults.project_id: must be a text value, not a list"),
        (
            f"defaults: {{img_url: '{URL1}', image: a.png}}",
            "defaults: give either `img_url` or `image`, not both",
        ),
        ("{a: 1}: 2", "keys must be plain names"),
        ("~: 2", "keys must be plain names"),
        ("rate: !!str 4", "rate: must be a number, not the text '4'"),
        ("rate: [1, &a 2]", "rate: YAML anchors and aliases are not allowed in job files"),
        (f"defaults: {{&k project_id: {P1}}}", f"defaults: {jobfile._ANCHORS}"),
        (f"defaults: {{project_id: {P1}, project_id: {P1}}}", "defaults.project_id: appears twice"),
        ("<<: {rate: 1}", "<<: YAML merge keys are not allowed in job files"),
    ],
)
def test_each_bad_setting_or_default_is_one_problem_naming_it(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Numbers out of range (the value cut short) or not numbers (`!!str 4` too), bad durations,
    unknown or clashing defaults, odd keys, an anchor deep in a value: each named at its line."""
    path = write(tmp_path, text + "\n" + ITEMS)
    assert problems(path) == [f"{path}:1: {problem}"]


def test_numbers_take_fractions_and_underscores_and_zero_where_allowed(tmp_path: Path) -> None:
    """rate: 0 (no cap), 2.5 and 1_0 are read as numbers; timeout takes a fraction of a second."""
    for text, rate in (("rate: 0", 0.0), ("rate: 2.5", 2.5), ("rate: 1_0", 10.0)):
        assert load_job(write(tmp_path, text + "\n" + ITEMS)).settings.rate == rate
    assert load_job(write(tmp_path, "timeout: 0.5\n" + ITEMS)).settings.timeout == 0.5


def test_a_setting_given_twice_is_named_at_its_second_line(tmp_path: Path) -> None:
    """The same key twice: the second one is the problem, at its own line."""
    path = write(tmp_path, "rate: 1\nrate: 2\n" + ITEMS)
    assert problems(path) == [f"{path}:2: rate: appears twice"]


def test_an_items_file_that_lists_nothing_or_is_given_images_is_refused(tmp_path: Path) -> None:
    """An items_file with only a header lists no items; `defaults.image` does not apply to one."""
    (tmp_path / "items.csv").write_text("project_id,plan_id,img_url\n")
    path = write(tmp_path, "items_file: items.csv\n")
    assert problems(path) == [f"{tmp_path / 'items.csv'}: lists no items"]
    path = write(tmp_path, "items_file: items.csv\ndefaults: {image: a.png}\n")
    assert problems(path) == [f"{path}:2: defaults.image: items_file items take img_url, not image"]
    (tmp_path / "items.csv").write_text("not a csv the job would read")
    path = write(tmp_path, "items_file: items.csv\nrate: -1\n")
    assert problems(path) == [f"{path}:2: rate: must be 0 or more, not -1"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("concurrency: 0", "concurrency: must be at least 1, not 0"),
        ("concurrency: 513", "concurrency: must be at most 512, not 513"),
        ("concurrency: 2.5", "concurrency: must be a whole number, not 2.5"),
        ("concurrency: " + "9" * 5000, "concurrency: must be at most 512, not " + "9" * 40),
        ("retries: -1", "retries: must be at least 0, not -1"),
        ("burst: 0", "burst: must be at least 1, not 0"),
        ("max_list_pages: 0", "max_list_pages: must be at least 1, not 0"),
        ("max_list_pages: '5'", "max_list_pages: must be a whole number, not the text '5'"),
        ("auth: {token_env: ~}", f"auth.token_env: {ENV_ADVICE}"),
        ("auth: {token_env: " + "A" * 129 + "}", f"auth.token_env: {ENV_ADVICE}"),
        ("auth: {token_env: 1A}", f"auth.token_env: {ENV_ADVICE}"),
    ],
)
def test_each_bad_whole_number_or_variable_name_is_one_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Whole numbers below their minimum, past their maximum or fractional; names that are not
    variable names (too long, a leading digit, null): each one problem, the value cut short."""
    path = write(tmp_path, text + "\n" + ITEMS)
    assert problems(path) == [f"{path}:1: {problem}"]


def test_whole_numbers_take_their_bounds_hex_and_underscores(tmp_path: Path) -> None:
    """512 workers, 0 retries and a rate of 10,000 are allowed; 0x10, 1_0 and 1__0 read as YAML
    numbers do (underscores are digit separators, however many), as do explicit tags and the
    non-specific `!` (as SafeLoader reads them); max_duration takes seconds, max_answer_mb
    mebibytes."""
    for text, field_name, value in (
        ("concurrency: 512", "concurrency", 512),
        ("concurrency: 0x10", "concurrency", 16),
        ("concurrency: 1_0", "concurrency", 10),
        ("concurrency: 1__0", "concurrency", 10),
        ("retries: 0", "retries", 0),
        ("max_list_pages: 9999", "max_list_pages", 9999),
        ("concurrency: !!int '4'", "concurrency", 4),
        ("concurrency: ! 4", "concurrency", 4),
        ("max_answer_mb: 2.5", "max_answer_bytes", 2_621_440),
        ("rate: 10000", "rate", 10_000.0),
        ("rate: 1__0", "rate", 10.0),
        ("max_duration: 90", "max_duration", 90.0),
        ("max_duration: 0.5", "max_duration", 0.5),
        ("max_duration: 2h", "max_duration", 7200.0),
    ):
        settings = load_job(write(tmp_path, text + "\n" + ITEMS)).settings
        assert getattr(settings, field_name) == value
    for name in ("A" * 128, "_A1"):
        job = load_job(write(tmp_path, f"auth: {{token_env: {name}}}\n" + ITEMS))
        assert job.auth == TokenAuth(env=name)


def count_image_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths jobfile inspects as images, in order, from now on."""
    read: list[Path] = []

    def counted(path: Path) -> LocalImage:
        read.append(path)
        return inspect_image(path)

    monkeypatch.setattr(jobfile, "inspect_image", counted)
    return read


def test_an_image_named_by_many_items_is_read_and_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three items (and a default) naming logo.png read it once; each item gets that check
    and keeps its line."""
    (tmp_path / "logo.png").write_bytes(png())
    read = count_image_reads(monkeypatch)
    path = write(
        tmp_path,
        f"defaults: {{project_id: {P1}, image: logo.png}}\nitems:\n"
        + "".join(f"  - {{plan_id: {plan(n)}}}\n" for n in range(2))
        + f"  - {{plan_id: {plan(2)}, image: logo.png}}\n",
    )
    items = load_job(path).items
    assert read == [tmp_path / "logo.png"]
    assert [(item.image, item.line) for item in items] == [
        (inspect_image(tmp_path / "logo.png"), line) for line in (3, 4, 5)
    ]


def test_a_large_job_read_again_keeps_each_image_as_it_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items read again from the file carry the checked image, so an image changed since the
    job was read is refused at upload instead of sent unchecked."""
    monkeypatch.setattr(jobfile, "KEEP_IN_MEMORY", 0)
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(1))
    checked = inspect_image(logo)
    path = write(tmp_path, f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, image: logo.png}}\n")
    job = load_job(path)
    assert isinstance(job.items, YamlItems)
    logo.write_bytes(png(2))
    [item] = list(job.items)
    assert item.image == checked
    with pytest.raises(ImageProblem, match="changed since the job was checked"):
        read_image(checked)


def test_a_bad_default_image_is_one_problem_however_many_items_use_it(tmp_path: Path) -> None:
    """`defaults.image` naming a missing file is reported once, not once per item."""
    path = write(
        tmp_path,
        f"defaults: {{project_id: {P1}, image: gone.png}}\nitems:\n"
        + "".join(f"  - {{plan_id: {plan(n)}}}\n" for n in range(3)),
    )
    assert problems(path) == [f"{path}:1: defaults.image: {tmp_path / 'gone.png'} does not exist"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *((f"progress: {word}", True) for word in ("true", "True", "yes", "YES", "on", "ON")),
        *((f"snapshot: {word}", False) for word in ("false", "no", "NO", "off", "Off")),
    ],
)
def test_yaml_booleans_are_read_in_each_of_their_spellings(
    tmp_path: Path, text: str, value: bool
) -> None:
    """yes/on/true (any case YAML allows) are true; no/off/false are false."""
    settings = load_job(write(tmp_path, text + "\n" + ITEMS)).settings
    assert getattr(settings, text.split(":")[0]) is value


def test_an_unknown_key_holding_nested_lists_and_mappings_is_skipped_whole(
    tmp_path: Path,
) -> None:
    """The value of an unknown key is read past to its end, however deep, so the keys after it
    are still checked."""
    path = write(tmp_path, "colour: {a: [1, {b: [2, 3]}, [4]], c: {d: 5}}\nrate: -1\n" + ITEMS)
    found = problems(path)
    assert [p.split(": ")[1] for p in found] == ["colour", "rate"]
    assert found[1] == f"{path}:2: rate: must be 0 or more, not -1"


def test_defaults_after_items_keep_the_problems_of_the_other_sections(tmp_path: Path) -> None:
    """Reading `items:` again for late defaults drops none of the problems found before it."""
    path = write(
        tmp_path,
        f"rate: -1\nitems:\n  - {{plan_id: {PLAN}, img_url: {URL1}}}\ndefaults:\n"
        f"  project_id: {P1}\n",
    )
    assert problems(path) == [f"{path}:1: rate: must be 0 or more, not -1"]


def test_two_plans_each_listed_twice_each_name_their_own_first_line(tmp_path: Path) -> None:
    """Each repeated plan points at the line where that plan, not another, first appears."""
    path = write(
        tmp_path,
        "items:\n"
        + "".join(
            f"  - {{project_id: {P1}, plan_id: {plan_id}, img_url: {URL1}}}\n"
            for plan_id in (PLAN, PLAN2, PLAN, PLAN2)
        ),
    )
    assert problems(path) == [
        f"{path}:4: items[2]: plan {PLAN} is already listed at line 2",
        f"{path}:5: items[3]: plan {PLAN2} is already listed at line 3",
    ]


def test_an_auth_file_is_capped_at_its_own_limit(tmp_path: Path) -> None:
    """An auth file past AUTH_FILE_LIMIT (far below a job file's) is refused, naming the cap."""
    path = tmp_path / "auth.yaml"
    path.write_text("auth: {token_env: A}\n" + "#" * AUTH_FILE_LIMIT + "\n")
    with pytest.raises(JobFileError) as info:
        load_auth(path)
    cap = describe(AUTH_FILE_LIMIT)
    assert [str(p) for p in info.value.problems] == [
        f"{path}: is larger than {cap}, the limit for an auth file"
    ]


def test_paths_in_an_auth_file_are_relative_to_that_file(tmp_path: Path) -> None:
    """token_file in `--auth conf/auth.yaml` is taken relative to conf/, like a job's paths."""
    (tmp_path / "conf").mkdir()
    path = write(tmp_path, "auth: {token_file: token}\n", "conf/auth.yaml")
    assert load_auth(path) == TokenAuth(file=tmp_path / "conf" / "token")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}\n", Problem("", 1, "auth", "missing; this file must hold an `auth:` section")),
        ("auth: &a {token_env: A}\n", Problem("", 1, "auth", jobfile._ANCHORS)),
        ("~: 1\nauth: {token_env: A}\n", Problem("", 1, "", "keys must be plain names")),
    ],
)
def test_each_problem_of_an_auth_file_names_its_line_and_key(
    tmp_path: Path, text: str, problem: Problem
) -> None:
    """An auth file with no auth, an anchored one or an odd key: the problem's line and key."""
    path = write(tmp_path, text, "auth.yaml")
    with pytest.raises(JobFileError) as info:
        load_auth(path)
    assert info.value.problems == (dataclasses.replace(problem, path=str(path)),)


def test_a_problem_of_the_whole_file_has_no_key_and_line_0_when_it_has_no_line(
    tmp_path: Path,
) -> None:
    """File-level problems (not YAML, settings that contradict each other, an empty file, an
    odd key, an items file listing nothing) have an empty key."""
    bad = write(tmp_path, "items: [\n")
    with pytest.raises(JobFileError) as info:
        load_job(bad)
    assert [(p.line, p.key) for p in info.value.problems] == [(2, "")]
    for text, line in (("quiet: true\nverbose: true\n", 1), ("", 0), ("~: 1\n", 1)):
        with pytest.raises(JobFileError) as info:
            load_job(write(tmp_path, text + (ITEMS if text else "")))
        assert [(p.line, p.key) for p in info.value.problems] == [(line, "")]
    (tmp_path / "items.csv").write_text("project_id,plan_id,img_url\n")
    with pytest.raises(JobFileError) as info:
        load_job(write(tmp_path, "items_file: items.csv\n"))
    assert info.value.problems == (Problem(str(tmp_path / "items.csv"), 0, "", "lists no items"),)


def test_each_bad_default_is_named_and_fills_no_item(tmp_path: Path) -> None:
    """Every key of `defaults:` is checked, past an unknown one; a bad default fills nothing,
    so an item lacking its own value is named too."""
    path = write(
        tmp_path,
        f"defaults: {{colour: x, project_id: short}}\nitems:\n  - {{plan_id: {PLAN}, img_url: {URL1}}}\n",
    )
    assert problems(path) == [
        f"{path}:1: defaults.colour: unknown key (known: image, img_url, project_id)",
        f"{path}:1: defaults.project_id: must be 32 letters or digits (the CodeArts Req project id)",
        f"{path}:3: items[0].project_id: missing",
    ]


def test_an_item_giving_both_img_url_and_image_is_one_problem_at_its_line(
    tmp_path: Path,
) -> None:
    """An item naming both an img_url and an image is refused as such, at the item's line."""
    path = write(
        tmp_path,
        f"items:\n  - {{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}}}\n"
        f"  - {{project_id: {P1}, plan_id: {PLAN2}, img_url: {URL1}, image: logo.png}}\n",
    )
    assert problems(path) == [f"{path}:3: items[1]: give either `img_url` or `image`, not both"]


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (
            f"{{project_id: &a {P1}, plan_id: {PLAN}, img_url: {URL1}}}",
            f"items[0].project_id: {jobfile._ANCHORS}",
        ),
        (
            f"{{project_id: {P1}, plan_id: {PLAN}, plan_id: {PLAN}, img_url: {URL1}}}",
            "items[0].plan_id: appears twice",
        ),
        (
            f"{{project_id: {P1}, plan_id: ~, img_url: {URL1}}}",
            "items[0].plan_id: must be a text value, not empty",
        ),
        (
            f"{{project_id: {P1}, plan_id: {PLAN}, img_url: {URL1}, extra: [1, {{a: [2]}}]}}",
            "items[0].extra: unknown key (known: project_id, plan_id, img_url, image)",
        ),
    ],
)
def test_each_bad_key_of_an_item_is_one_problem_naming_the_item(
    tmp_path: Path, item: str, problem: str
) -> None:
    """An anchored value, a repeated key, an empty value, or an unknown key (its value skipped
    whole, however deep) in an item: one problem, named with the item."""
    path = write(tmp_path, f"items:\n  - {item}\n")
    assert problems(path) == [f"{path}:2: {problem}"]


def test_the_duplicates_pass_reads_no_image_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan listed twice with an image is refused, and the image is still read only once."""
    (tmp_path / "logo.png").write_bytes(png())
    read = count_image_reads(monkeypatch)
    line = f"  - {{project_id: {P1}, plan_id: {PLAN}, image: logo.png}}\n"
    path = write(tmp_path, "items:\n" + line * 2)
    assert problems(path) == [f"{path}:3: items[1]: plan {PLAN} is already listed at line 2"]
    assert read == [tmp_path / "logo.png"]
