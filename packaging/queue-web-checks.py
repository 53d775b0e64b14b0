#!/usr/bin/env python3
"""The web view's queue pages against the real queue helper, for
packaging/test-queue: run on the host inside the booted container's network
namespace (nsenter -n), talking to exim-pilot-web.service on 127.0.0.1.

Usage: queue-web-checks.py PORT ID...   (three or more queued message ids)

Prints one "ok: ..." or "FAIL: ..." line per check and exits with the
number of failures. Users: ada (admin) and vic (viewer), whose passwords
are "ada's secret" and "vic's secret".
"""

import html
import http.client
import json
import re
import sys
import time
import urllib.parse

PORT = int(sys.argv[1])
IDS = sys.argv[2:]
failures = 0


def check(description, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {description}")
    else:
        failures += 1
        print(f"FAIL: {description} {detail}"[:2000])


def request(method, path, cookie=None, form=None, headers=None):
    """Status, headers and body (text) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    sent = {"Host": f"127.0.0.1:{PORT}"}
    if cookie:
        sent["Cookie"] = cookie
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form, doseq=True)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.setdefault("Origin", f"http://127.0.0.1:{PORT}")
    sent.update(headers or {})
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, dict(response.getheaders()), text


def sign_in(name, password):
    status, headers, _ = request(
        "POST", "/login", form={"name": name, "password": password, "next": "/"}
    )
    cookie = headers.get("set-cookie") or headers.get("Set-Cookie") or ""
    return cookie.split(";", 1)[0]


def hidden(page, name):
    found = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    return html.unescape(found.group(1)) if found else ""


admin = sign_in("ada", "ada's secret")
viewer = sign_in("vic", "vic's secret")
check("both users signed in", admin and viewer, f"{admin!r} {viewer!r}")

# The web unit, unchanged in its hardening, lists the queue through the
# helper's socket.
status, _, page = request("GET", "/queue", admin)
check("/queue answers the admin with 200", status == 200, f"{status} {page[:500]}")
check("/queue lists every queued id", all(i in page for i in IDS), page[:3000])
status, _, listing = request("GET", "/api/v1/queue", viewer)
check("a viewer may list (/api/v1/queue, 200)", status == 200, f"{status}")
form_token = hidden(page, "form_token")
check("the admin's page carries a form token", form_token != "")

one = {"action": "freeze", "id": IDS[0], "reason": "web test", "form_token": form_token}
status, _, _ = request("POST", "/queue/confirm", viewer, dict(one, form_token=hidden(
    request("GET", "/queue", viewer)[2], "form_token")))
check("a viewer's confirmation gets 403", status == 403, f"{status}")
status, _, _ = request("POST", "/queue/confirm", admin, one, {"Origin": "https://evil.example"})
check("a cross-site POST gets 403", status == 403, f"{status}")
status, _, _ = request("POST", "/queue/confirm", admin, {k: v for k, v in one.items() if k != "form_token"})
check("a POST without the form token gets 403", status == 403, f"{status}")
status, _, body = request("GET", f"/queue/{IDS[0]}/body", viewer)
check("a viewer cannot read a queued body (403)", status == 403, f"{status}")

# The confirmation is the helper's dry run, with Exim's command line.
status, _, confirm = request("POST", "/queue/confirm", admin, one)
check("the admin's confirmation page (200) shows Exim's command line",
      status == 200 and f"-Mf {IDS[0]}" in confirm, f"{status} {confirm[:2000]}")
confirmed = dict(one, expires=hidden(confirm, "expires"), confirm=hidden(confirm, "confirm"))
status, _, _ = request("POST", "/queue/act", admin, dict(confirmed, id=[IDS[0], IDS[1]]))
check("a confirmation widened to another id is refused (403)", status == 403, f"{status}")
tampered = dict(confirmed, confirm="0" * len(confirmed["confirm"]))
status, _, _ = request("POST", "/queue/act", admin, tampered)
check("a tampered confirmation is refused (403)", status == 403, f"{status}")
status, _, done = request("POST", "/queue/act", admin, confirmed)
check("the confirmed freeze runs and is done", status == 200 and "done" in done, f"{status} {done[:2000]}")

# Bulk: every id, three bulk actions a minute, then 429.
statuses = []
for action in ["thaw", "freeze", "thaw", "freeze"]:
    bulk = {"action": action, "id": IDS, "reason": "web bulk", "form_token": form_token}
    status, _, confirm = request("POST", "/queue/confirm", admin, bulk)
    if status != 200:
        statuses.append(status)
        continue
    bulk.update(expires=hidden(confirm, "expires"), confirm=hidden(confirm, "confirm"))
    status, _, _ = request("POST", "/queue/act", admin, bulk)
    statuses.append(status)
check("bulk actions: three run, the fourth gets 429", statuses == [200, 200, 200, 429], f"{statuses}")

# The daemon counted the queue through the helper when it started: the
# count is kept and charted with the flow.
deadline = time.time() + 60
counted = []
while time.time() < deadline:
    status, _, text = request("GET", "/api/v1/flow", admin)
    if status == 200:
        counted = [b["queue"] for b in json.loads(text)["buckets"] if b.get("queue")]
        if counted:
            break
    time.sleep(1)
check("the daemon's queue count is in /api/v1/flow", counted != [], f"{status}")

sys.exit(failures)
