# SPDX-License-Identifier: MIT
"""GET /api/v1/nodes a page at a time, as the Kubernetes API pages lists
(docs/report-format.md, "Listing nodes"): the real aggregator on
127.0.0.1, plain HTTP. The pages put together are exactly the fleet, in
name order, each node once; the token keeps its place while nodes come
and go; a bad limit or token is refused with 400 naming the parameter."""

import base64
import http.client
import json
import random
import urllib.parse

import pytest

from test_aggregator import HASH_NEW, HASH_OLD, TOKEN, Aggregator, report

DEFAULT_LIMIT, MAX_LIMIT = 500, 1000


@pytest.fixture
def agg(tmp_path):
    with Aggregator(tmp_path / "agg") as a:
        yield a


def post_many(agg, names, **kw):
    """One report per name over one kept-alive connection (fast)."""
    c = http.client.HTTPConnection("127.0.0.1", agg.port, timeout=10)
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    for name in names:
        c.request("POST", "/api/v1/reports", body=json.dumps(report(name, **kw)).encode(), headers=hdrs)
        r = c.getresponse()
        assert r.status == 200, (name, r.status, r.read())
        r.read()
    c.close()


def page(agg, **params):
    return agg.get_json("/api/v1/nodes?" + urllib.parse.urlencode(params))


def all_pages(agg, **params):
    """Every page, following metadata.continue; the pages as a list."""
    pages = [page(agg, **params)]
    while "continue" in pages[-1]["metadata"]:
        pages.append(page(agg, **{**params, "continue": pages[-1]["metadata"]["continue"]}))
        assert len(pages) < 1000
    return pages


def names(pages):
    return [n["name"] for p in pages for n in p["nodes"]]


def test_pages_concatenate_to_the_fleet(agg):
    fleet = [f"node-{i:02d}" for i in range(23)]
    failing = fleet[3::4]
    shuffled = fleet[:]
    random.Random(14).shuffle(shuffled)
    post_many(agg, [n for n in shuffled if n not in failing])
    post_many(agg, failing, errors=["failed to write ca.crt: EROFS"])

    pages = all_pages(agg, limit=5)
    assert [len(p["nodes"]) for p in pages] == [5, 5, 5, 5, 3]
    assert names(pages) == sorted(fleet)
    assert [p["total"] for p in pages] == [23] * 5
    assert [p["metadata"]["remaining"] for p in pages] == [18, 13, 8, 3, 0]
    assert all(p["metadata"]["limit"] == 5 for p in pages)
    assert "continue" not in pages[-1]["metadata"]
    # The node objects are those of the single-node view, without the details.
    one = agg.get_json("/api/v1/nodes/node-07")
    del one["registry_details"]
    listed = next(n for p in pages for n in p["nodes"] if n["name"] == "node-07")
    assert listed == one

    # Filtered by state: the failing ones only, paged the same way.
    pages = all_pages(agg, state="failing", limit=2)
    assert names(pages) == failing and [p["total"] for p in pages] == [len(failing)] * 3
    assert {n["state"] for p in pages for n in p["nodes"]} == {"failing"}

    # A page exactly as long as what is left ends the list: no empty last page.
    pages = all_pages(agg, limit=23)
    assert len(pages) == 1 and names(pages) == sorted(fleet)


def test_default_and_maximum_page(agg):
    fleet = [f"n{i:04d}" for i in range(MAX_LIMIT + 1)]
    post_many(agg, fleet)
    first = agg.get_json("/api/v1/nodes")
    assert len(first["nodes"]) == DEFAULT_LIMIT and first["metadata"]["limit"] == DEFAULT_LIMIT
    assert first["total"] == MAX_LIMIT + 1 and first["metadata"]["remaining"] == MAX_LIMIT + 1 - DEFAULT_LIMIT
    biggest = page(agg, limit=MAX_LIMIT)
    assert names([biggest]) == fleet[:MAX_LIMIT] and biggest["metadata"]["remaining"] == 1
    last = page(agg, limit=MAX_LIMIT, **{"continue": biggest["metadata"]["continue"]})
    assert names([last]) == fleet[MAX_LIMIT:] and "continue" not in last["metadata"]


def test_token_survives_churn(agg):
    fleet = [f"m-{i:02d}" for i in range(12)]
    post_many(agg, fleet)
    first = page(agg, limit=4)
    assert names([first]) == fleet[:4]
    token = first["metadata"]["continue"]

    # Between pages: a node before the token's place, one after it, one
    # listed already and one still to come report again (one turns failing).
    post_many(agg, ["a-new", "z-new", "m-01"])
    post_many(agg, ["m-06"], errors=["boom"])
    rest = all_pages(agg, limit=4, **{"continue": token})
    seen = names([first]) + names(rest)
    # Each node once; the one named after the place shows up, the one
    # before it does not (it is behind the token), nothing else moves.
    assert seen == fleet + ["z-new"], seen
    assert rest[0]["total"] == 14
    assert next(n for p in rest for n in p["nodes"] if n["name"] == "m-06")["state"] == "failing"

    # The node the token names may itself be gone or never have existed:
    # the place is the name, so the next page starts after it all the same
    # (a removal is tested in tests/unit/test-agg-fleet.c: the e2e clock is
    # too slow to forget a node).


def bad(agg, query):
    status, headers, body = agg.request("/api/v1/nodes?" + query)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


LIMIT_REASON = f"limit must be a number from 1 to at most {MAX_LIMIT} (default {DEFAULT_LIMIT})"


@pytest.mark.parametrize("value", ["0", "-1", "abc", str(MAX_LIMIT + 1), "", "1e3", "+5", " 5", "5x",
                                   "99999999999999999999999"])
def test_bad_limit(agg, value):
    post_many(agg, ["w"])
    assert bad(agg, "limit=" + urllib.parse.quote(value)) == (400, {"error": LIMIT_REASON, "parameter": "limit"})


def test_bad_state(agg):
    assert bad(agg, "state=happy") == (400, {"error": "state must be converged, lagging, failing or stale",
                                            "parameter": "state"})


MALFORMED = "continue is not a token this aggregator issued (malformed)"
FORGED = ("continue is not a token this aggregator issued (forged, or from before a restart): "
          "list again from the start")


def test_bad_continue(agg, tmp_path):
    post_many(agg, [f"w{i}" for i in range(6)])
    token = page(agg, limit=2)["metadata"]["continue"]
    assert page(agg, limit=2, **{"continue": token})["nodes"][0]["name"] == "w2"

    def refused(t, reason, **params):
        q = urllib.parse.urlencode({"limit": 2, **params, "continue": t})
        assert bad(agg, q) == (400, {"error": reason, "parameter": "continue"}), t

    refused("", MALFORMED)
    refused("not a token!", MALFORMED)
    refused("A", MALFORMED)
    refused("x" * 5000, MALFORMED)
    refused(token + "=", MALFORMED)
    # Any byte changed, dropped or added fails the MAC.
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    refused(flipped, FORGED)
    refused(token + "AAAA", FORGED)
    # The same position, written by hand without the key: forged.
    hand = base64.urlsafe_b64encode(b"\x01\x00w3" + bytes(16)).decode().rstrip("=")
    refused(hand, FORGED)
    # With another filter than the first page's.
    refused(token, "continue token was issued for another filter: ask with the same parameters as the first page",
            state="failing")
    # From another aggregator process: its key is another.
    with Aggregator(tmp_path / "other") as other:
        post_many(other, ["w0", "w1", "w2"])
        foreign = other.get_json("/api/v1/nodes?limit=1")["metadata"]["continue"]
    refused(foreign, FORGED)
    # A limit may change between pages; the token stays good.
    assert names([page(agg, limit=3, **{"continue": token})]) == ["w2", "w3", "w4"]


def test_old_clients_still_get_a_list(agg):
    """A client that knows nothing of pages gets the first page, in name
    order, with total: as before for a fleet under the default limit."""
    post_many(agg, ["b", "a"], source=HASH_OLD, applied=HASH_OLD)
    post_many(agg, ["c"], source=HASH_NEW, applied=HASH_OLD)
    d = agg.get_json("/api/v1/nodes")
    assert names([d]) == ["a", "b", "c"] and d["total"] == 3
    assert {n["name"]: n["state"] for n in d["nodes"]} == {"a": "lagging", "b": "lagging", "c": "lagging"}
    assert d["metadata"] == {"limit": DEFAULT_LIMIT, "remaining": 0}
