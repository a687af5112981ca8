"""Every choice the sandbox makes where the documentation does not settle the behaviour.

Each entry names what is inferred and where the facts file discusses it
(``/work/shared/api/codearts-req-facts.md``, "facts" below), and how to change it when it is
configurable. Where the documentation speaks, the sandbox follows it by default: wrapped list
elements (facts §0), permission errors as HTTP 400 (§0), unknown projects as 400
``PM.02152005`` (§5.2), ``X-Project-Id`` on AK/SK calls as the SDK always sends it (§4.3).
"""

from __future__ import annotations

# -- ids and URLs ---------------------------------------------------------------------------

# An unknown plan: no "plan not found" code is documented (facts §5.2, §7.4); the sandbox
# answers the documented "invalid parameter" code.
UNKNOWN_PLAN = (400, "PM.02175006")

# The img_url pattern: the update page's `/v1/upload/%s/\d{6}/[a-zA-Z0-9]+.[a-zA-Z]` with %s
# unproven, and the download page's `[a-z0-9]{1,32}` in that slot (facts §0, §1.6). The sandbox
# takes 1 to 32 letters or digits there, anchors the pattern and bounds the name and extension.
IMG_URL_ID = r"[A-Za-z0-9]{1,32}"
IMG_NAME_MAX = 64  # upload names are 19 digits; the docs give no maximum
IMG_EXT_MAX = 8

# Whether a URL uploaded to another project is accepted is unknown (facts §7.2): accepted,
# unless SandboxConfig(strict_urls=True) (`batchthumb sandbox --strict`).

# -- shapes ---------------------------------------------------------------------------------

# List elements: documented as {result, status} (facts §0), never seen live; bare elements
# stay available with SandboxConfig(list_wrapped=False) (`--list-bare`).

# -- rate limits ----------------------------------------------------------------------------

# APIG counts "limit:XX,time:1 second" (or "1 minute") but says neither how big a burst is nor
# where a fixed window starts (facts §0, §5.3). The sandbox's bucket holds a tenth of a second
# of the rate in force (`--limit-burst`), and its fixed windows start at the first request, or
# on its clock's whole windows with RateLimit(aligned=True) (`--limit-align clock`).

# -- permissions ----------------------------------------------------------------------------

# A non-member's request: 400 PM.02150010 (the error-code page's status for that code, §0);
# the message is the code's documented meaning.
NOT_A_MEMBER = (400, "PM.02150010", "The user is not a member of the project.")
# DownloadImageFile without codeartsreq:attachment:download: 400 PM.02174103 "无操作权限", the
# page's own example (§0). Modelled by SandboxConfig(download_permission=False).
NO_PERMISSION = (400, "PM.02174103", "无操作权限")

# -- AK/SK and IAM --------------------------------------------------------------------------

# Whether CodeArts Req needs X-Project-Id on AK/SK calls is unknown (facts §4.3, §7.6); the SDK
# always sends it, so the sandbox requires it by default (SandboxConfig(require_project_id=
# False) or `--no-project-id-check` to relax). Missing or unknown: 401 APIGW.0301 with this
# message, an inferred shape (the gateway's IAM-authentication code).
MISSING_PROJECT_ID = "Incorrect IAM authentication information: X-Project-Id is missing or unknown"
# The IAM project the sandbox's Keystone lists for cn-north-4 (GET /v3/projects?name=).
IAM_PROJECT_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
IAM_REGION = "cn-north-4"

# -- server errors --------------------------------------------------------------------------

# 5xx bodies are not documented: the sandbox sends SANDBOX.05xx codes (faults.py).
