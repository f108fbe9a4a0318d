// SPDX-License-Identifier: MIT
"use strict";
(function () {
  var REFRESH_MS = 5000, MAX_ROWS = 200;
  var STATES = ["failing", "stale", "lagging", "converged"];
  var REASON_CHARS = 90;

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

  function refresh() {
    Promise.all([getJSON("/api/v1/summary"), getJSON("/api/v1/nodes?limit=" + MAX_ROWS)]).then(function (r) {
      renderSummary(r[0]);
      renderNodes(r[1]);
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
