// SPDX-License-Identifier: MIT
"use strict";
(function () {
  var REFRESH_MS = 5000, MAX_ROWS = 200;
  var STATES = ["failing", "stale", "lagging", "converged"];
  var REASON_CHARS = 90;
  // Nodes needing attention shown per registry (the API lists 20), so one
  // registry missing everywhere does not fill the screen.
  var ATTENTION_SHOWN = 6;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function shortHash(h) { return h ? h.slice(0, 12) : "none"; }
  function ago(t, now) {
    var s = Math.max(0, now - t);
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  // Any integer may arrive; toISOString() throws on one no Date can hold.
  function isoDate(t) {
    var d = new Date(t * 1000);
    return isNaN(d.getTime()) ? String(t) : d.toISOString().slice(0, 10);
  }
  function expiryText(t, now) {
    var d = Math.floor((t - now) / 86400);
    if (t <= now) return "expired " + Math.max(0, Math.floor((now - t) / 86400)) + " days ago";
    if (d < 1) return "within a day";
    return "in " + d + (d === 1 ? " day" : " days");
  }
  function getJSON(url) {
    return fetch(url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }
  function replaceRows(tbody, rows) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  function renderSummary(s) {
    var total = 0;
    STATES.forEach(function (st) {
      var n = (s.counts && s.counts[st]) || 0;
      total += n;
      $("count-" + st).textContent = n;
    });
    $("count-total").textContent = s.total !== undefined ? s.total : total;
    $("count-shadowed").textContent = s.shadowed || 0;
    $("count-inactive-target").textContent = s.inactive_target || 0;
    var targets = s.targets || {};
    $("inactive-targets").textContent = Object.keys(targets).sort().filter(function (t) {
      return targets[t] && targets[t].inactive > 0;
    }).map(function (t) { return t + " " + targets[t].inactive; }).join(", ");
    $("current-hash").textContent = shortHash(s.current_hash);
    $("current-hash").title = s.current_hash || "";
    var now = s.generated_at;
    if (s.soonest_expiry !== null && s.soonest_expiry !== undefined) {
      $("soonest").textContent = isoDate(s.soonest_expiry) + " (" + expiryText(s.soonest_expiry, now) + ", " +
        (s.soonest_expiry_registry ? s.soonest_expiry_registry + " on " : "") + s.soonest_expiry_node + ")";
      $("soonest").className = s.soonest_expiry - now < 30 * 86400 ? "soon" : "";
    } else {
      $("soonest").textContent = "none reported";
      $("soonest").className = "";
    }
    $("expiring-days").textContent = s.expiring_within_days;
    var rows = (s.expiring || []).map(function (c) {
      var tr = el("tr");
      tr.appendChild(el("td", c.not_after - now < 7 * 86400 ? "soon" : "", expiryText(c.not_after, now)));
      tr.appendChild(el("td", "mono", c.registry));
      tr.appendChild(el("td", "name", c.node));
      tr.appendChild(el("td", "muted", isoDate(c.not_after)));
      return tr;
    });
    replaceRows($("expiring"), rows);
    $("expiring-empty").hidden = rows.length > 0;
    $("expiring-note").textContent = s.expiring_total > rows.length ?
      "showing the soonest " + rows.length + " of " + s.expiring_total : "";
  }

  function problem(n) {
    if (n.state === "stale") return "no report for " + ago(n.last_seen, nowFrom).replace(" ago", "");
    if (n.errors && n.errors.length) {
      var more = n.errors_total > 1 ? " (+" + (n.errors_total - 1) + " more)" : "";
      return n.errors[0] + more;
    }
    if (!n.ready) return "agent not ready";
    if (n.state === "lagging") return n.applied_hash ? "applied an older trust set" : "nothing applied yet";
    return "";
  }

  // One line per inactive target (its reason, cut short, in full as the
  // title) and one for shadowed registries. Text only, never markup.
  function warnings(n) {
    var td = el("td", "warnings"), targets = n.targets || {};
    Object.keys(targets).sort().forEach(function (name) {
      var t = targets[name];
      if (!t || t.state !== "inactive") return;
      var reason = typeof t.reason === "string" ? t.reason : "";
      var w = el("div", "warning target-inactive");
      w.appendChild(el("span", "warn", name + " inactive"));
      if (reason) w.appendChild(el("span", "reason",
        reason.length > REASON_CHARS ? reason.slice(0, REASON_CHARS - 1) + "\u2026" : reason));
      w.title = name + " will not read the CA directory" + (reason ? ": " + reason : "");
      w.setAttribute("data-target", name);
      td.appendChild(w);
    });
    if (n.shadowed > 0) {
      var s = el("div", "warning shadowed");
      s.appendChild(el("span", "warn", n.shadowed + (n.shadowed === 1 ? " shadowed registry" : " shadowed registries")));
      s.title = "a CA is written but a runtime will not use it (an admin's file shadows it)";
      td.appendChild(s);
    }
    return td;
  }

  var nowFrom = 0;
  function renderNodes(d) {
    var now = d.generated_at;
    nowFrom = now;
    var nodes = d.nodes || [], total = d.total !== undefined ? d.total : nodes.length;
    var rows = nodes.slice(0, MAX_ROWS).map(function (n) {
      var tr = el("tr");
      tr.appendChild(el("td", "name", n.name));
      var st = el("td"); st.appendChild(el("span", "pill " + n.state, n.state)); tr.appendChild(st);
      tr.appendChild(el("td", "muted nowrap", ago(n.last_seen, now)));
      var h = el("td", "mono", shortHash(n.applied_hash)); h.title = n.applied_hash || ""; tr.appendChild(h);
      var reg = n.registries || {};
      var regText = (reg.applied || 0) + " applied";
      if (reg.refused) regText += ", " + reg.refused + " refused";
      if (reg.conflict) regText += ", " + reg.conflict + " conflict";
      if (reg.failed) regText += ", " + reg.failed + " failed";
      if (reg.shadowed) regText += ", " + reg.shadowed + " shadowed";
      tr.appendChild(el("td", "num hide-narrow", regText));
      tr.appendChild(el("td", "hide-narrow " + (n.soonest_expiry !== null && n.soonest_expiry - now < 30 * 86400 ? "soon" : ""),
        n.soonest_expiry !== null ? isoDate(n.soonest_expiry) : "\u2013"));
      tr.appendChild(el("td", n.state === "converged" ? "muted" : "err", problem(n)));
      tr.appendChild(warnings(n));
      return tr;
    });
    replaceRows($("nodes"), rows);
    $("nodes-empty").hidden = total > 0;
    $("nodes-note").textContent = total > rows.length ?
      "showing the first " + rows.length + " of " + total : total + (total === 1 ? " node" : " nodes");
  }

  function countCell(n, bad) {
    return el("td", "num " + (n ? (bad ? "bad" : "") : "zero"), n || 0);
  }

  // One row per registry: its bundles across the fleet (more than one is
  // worth a look), the counts, and the first nodes needing attention.
  function renderRegistries(d) {
    // Those needing attention first, then by name.
    var now = d.generated_at, regs = (d.registries || []).slice().sort(function (a, b) {
      return (b.attention_total || 0) - (a.attention_total || 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    var rows = regs.slice(0, MAX_ROWS).map(function (g) {
      var c = g.counts || {}, tr = el("tr");
      tr.setAttribute("data-registry", g.name);
      tr.appendChild(el("td", "name mono", g.name));
      var fps = el("td"), list = g.fingerprints || [];
      list.forEach(function (f) {
        var d1 = el("div", "fp mono" + (g.fingerprints_total > 1 ? " split" : ""),
          shortHash(f.fingerprint) + " \u00d7" + f.nodes);
        d1.title = f.fingerprint;
        fps.appendChild(d1);
      });
      if (g.fingerprints_total > list.length)
        fps.appendChild(el("div", "muted", "+" + (g.fingerprints_total - list.length) + " more"));
      if (!list.length) fps.appendChild(el("span", "muted", "\u2013"));
      tr.appendChild(fps);
      tr.appendChild(countCell(c.applied, false));
      tr.appendChild(countCell(c.verified, false));
      tr.appendChild(countCell(c.mismatch, true));
      var u = countCell(c.unreachable, true); u.className += " hide-narrow"; tr.appendChild(u);
      tr.appendChild(countCell(c.lacking, true));
      // The date, and under it how far away that is.
      var t = g.soonest_server_not_after, known = t !== null && t !== undefined;
      var sc = el("td", "nowrap " + (known && t - now < 30 * 86400 ? "soon" : "muted"), known ? isoDate(t) : "not checked");
      if (known) sc.appendChild(el("div", "rel", expiryText(t, now)));
      tr.appendChild(sc);
      var at = el("td", "attention");
      (g.attention || []).slice(0, ATTENTION_SHOWN).forEach(function (a) {
        var s1 = el("span", "attn");
        s1.appendChild(el("span", "name", a.node));
        s1.appendChild(el("span", "why", a.why));
        at.appendChild(s1);
      });
      var shown = Math.min(ATTENTION_SHOWN, (g.attention || []).length);
      if (g.attention_total > shown) at.appendChild(el("span", "muted nowrap", "+" + (g.attention_total - shown) + " more"));
      if (!g.attention_total) at.appendChild(el("span", "muted", "none"));
      tr.appendChild(at);
      return tr;
    });
    replaceRows($("registries"), rows);
    $("registries-empty").hidden = rows.length > 0;
    var total = d.registries_total !== undefined ? d.registries_total : regs.length;
    $("registries-note").textContent = (total > rows.length ? "showing the first " + rows.length + " of " + total :
      total + (total === 1 ? " registry" : " registries")) + " over " + d.nodes + (d.nodes === 1 ? " node" : " nodes") +
      " not stale";
  }

  // The SVG namespace, from the <svg> the HTML parser made: the page names no URL.
  function svg(tag, attrs, text) {
    var e = document.createElementNS($("rollout-svg").namespaceURI, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function duration(s) {
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }

  // Nodes converged against time since the rollout started: a step line
  // (the count rises as each node first reports the hash applied), a dot per
  // point, the fleet size dashed; earlier rollouts in grey on the same time
  // axis, for comparison. Built with DOM methods only.
  function renderRollout(d) {
    var root = $("rollout-svg"), cur = d.current, prev = d.previous || [];
    while (root.firstChild) root.removeChild(root.firstChild);
    // An SVGElement has no .hidden property: the attribute, and page.css, do it.
    if (cur) root.removeAttribute("hidden"); else root.setAttribute("hidden", "");
    $("rollout-hash").textContent = cur ? shortHash(cur.hash) : "\u2013";
    $("rollout-hash").title = cur ? cur.hash : "";
    if (!cur) {
      $("rollout-note").textContent = "";
      $("rollout-legend").textContent = "No report yet.";
      return;
    }
    var now = d.generated_at, elapsed = Math.max(1, now - cur.started);
    var top = Math.max(1, cur.nodes, cur.converged);
    prev.forEach(function (p) { top = Math.max(top, p.converged); });
    var W = 1100, H = 220, L = 44, R = 70, T = 14, B = 30;
    var x = function (s) { return L + Math.min(1, Math.max(0, s / elapsed)) * (W - L - R); };
    var y = function (n) { return T + (1 - n / top) * (H - T - B); };
    root.setAttribute("aria-label", cur.converged + " of " + cur.nodes + " nodes converged");
    [0.25, 0.5, 0.75].forEach(function (f) {
      root.appendChild(svg("line", { "class": "grid", x1: L, x2: W - R, y1: y(top * f), y2: y(top * f) }));
    });
    root.appendChild(svg("line", { "class": "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
    root.appendChild(svg("line", { "class": "axis", x1: L, x2: L, y1: T, y2: y(0) }));
    root.appendChild(svg("text", { x: L - 8, y: y(0) + 4, "text-anchor": "end" }, 0));
    root.appendChild(svg("text", { x: L - 8, y: y(top) + 4, "text-anchor": "end" }, top));
    root.appendChild(svg("text", { x: L, y: H - 8 }, "started " + new Date(cur.started * 1000).toLocaleTimeString()));
    root.appendChild(svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, "now, +" + duration(now - cur.started)));
    root.appendChild(svg("line", { "class": "total", x1: L, x2: W - R, y1: y(cur.nodes), y2: y(cur.nodes) }));
    root.appendChild(svg("text", { "class": "total-label", x: W - R + 6, y: y(cur.nodes) + 4 },
      cur.nodes + (cur.nodes === 1 ? " node" : " nodes")));

    function steps(r, end) {
      var dpath = "M" + x(0).toFixed(1) + " " + y(0).toFixed(1), last = 0;
      (r.points || []).forEach(function (p) {
        var s = p.at - r.started;
        if (s > elapsed) return;
        dpath += " H" + x(s).toFixed(1) + " V" + y(p.converged).toFixed(1);
        last = p.converged;
      });
      return { d: dpath + " H" + x(end).toFixed(1), last: last };
    }
    prev.forEach(function (p) {
      var end = p.ended ? Math.min(elapsed, p.ended - p.started) : elapsed;
      root.appendChild(svg("path", { "class": "curve previous", d: steps(p, end).d }));
    });
    var c = steps(cur, now - cur.started);
    root.appendChild(svg("path", { "class": "area",
      d: c.d + " V" + y(0).toFixed(1) + " Z" }));
    root.appendChild(svg("path", { "class": "curve current", d: c.d }));
    (cur.points || []).forEach(function (p) {
      var dot = svg("circle", { "class": "point", cx: x(p.at - cur.started).toFixed(1), cy: y(p.converged).toFixed(1), r: 3.5 });
      dot.appendChild(svg("title", {}, p.converged + " converged at " + new Date(p.at * 1000).toLocaleTimeString()));
      root.appendChild(dot);
    });

    $("rollout-note").textContent = cur.converged + " of " + cur.nodes + " nodes converged, started " +
      ago(cur.started, now);
    $("rollout-legend").textContent = prev.length ? "Earlier: " + prev.map(function (p) {
      return shortHash(p.hash) + " (" + p.converged + " of " + p.nodes + " nodes, " +
        (p.points && p.points.length ? "last in " + duration(p.points[p.points.length - 1].at - p.started) :
          "none converged") + ")";
    }).join(", ") : "No earlier rollout since the aggregator started.";
  }

  // The first MAX_ROWS nodes, those needing attention first. The API lists
  // nodes in name order (the order that pages stably), so ask state by
  // state, each the first page of its own list, until the rows are full;
  // each state's total is asked for even then, so the note counts all.
  function getNodes() {
    var out = { nodes: [], total: 0, generated_at: 0 };
    return STATES.reduce(function (p, st) {
      return p.then(function () {
        var want = MAX_ROWS - out.nodes.length;
        return getJSON("/api/v1/nodes?state=" + st + "&limit=" + Math.max(1, want)).then(function (d) {
          out.generated_at = d.generated_at;
          out.total += d.total;
          if (want > 0) out.nodes = out.nodes.concat(d.nodes.slice(0, want));
        });
      });
    }, Promise.resolve()).then(function () { return out; });
  }

  function refresh() {
    Promise.all([getJSON("/api/v1/summary"), getNodes(),
                 getJSON("/api/v1/registries"), getJSON("/api/v1/rollout")]).then(function (r) {
      renderSummary(r[0]);
      renderNodes(r[1]);
      renderRegistries(r[2]);
      renderRollout(r[3]);
      $("banner").className = "banner";
      $("updated").textContent = "updated " + new Date(r[0].generated_at * 1000).toLocaleTimeString();
      document.body.setAttribute("data-loaded", "true");
    }).catch(function (e) {
      $("banner").textContent = "Cannot reach the aggregator (" + e.message + "); showing the last data, retrying.";
      $("banner").className = "banner show";
    }).then(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();
