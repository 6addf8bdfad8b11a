// polyfleet NOC dashboard: plain ES module, no build step, no dependencies. Everything from the API is
// rendered with textContent (never innerHTML), so device and alert text cannot inject markup.

const API = "/api/v1";
const TOKEN_KEY = "polyfleet.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);

let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let stream;
let searchTimer;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = message === "";
}

async function api(path, init = {}) {
  const res = await fetch(API + path, {
    ...init,
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body ? { "content-type": "application/json" } : {}),
    },
  });
  if (res.status === 204) return undefined;
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401) signOut();
    const issues = (body.error?.issues ?? []).map((i) => `${i.path}: ${i.message}`).join("; ");
    const err = new Error(
      `${body.error?.code ?? res.status}: ${body.error?.message ?? res.statusText}${issues ? ` (${issues})` : ""}`,
    );
    err.status = res.status;
    throw err;
  }
  return body;
}

const ago = (ts) => {
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
};

async function loadSummary() {
  const [sites, agents] = await Promise.all([api("/sites"), api("/agents")]);
  const box = $("#summary");
  box.replaceChildren(
    ...sites.map((s) => {
      const mine = agents.filter((a) => a.siteId === s.siteId);
      const online = mine.filter((a) => a.status === "online").length;
      return el(
        "div",
        { class: "card" },
        el("strong", { text: s.name }),
        el("div", { class: "muted", text: `${s.devices} devices` }),
        el("div", {
          class: online === mine.length ? "up" : "down",
          text: `agents ${online}/${mine.length} online`,
        }),
      );
    }),
  );
}

async function ack(alert) {
  const comment = window.prompt(`Acknowledge "${alert.summary}"\nComment:`);
  if (!comment) return;
  try {
    await api(`/alerts/${encodeURIComponent(alert.id)}/ack`, {
      method: "POST",
      body: JSON.stringify({ comment }),
    });
    await loadAlerts();
  } catch (err) {
    showError(err.message);
  }
}

async function loadAlerts() {
  const alerts = await api("/alerts?state=active&limit=500");
  $("#alert-count").textContent = `(${alerts.length})`;
  $("#alerts tbody").replaceChildren(
    ...alerts.map((a) =>
      el(
        "tr",
        {},
        el("td", { class: `sev sev-${a.severity}`, text: a.severity }),
        el(
          "td",
          { text: a.summary },
          ...(a.flapping ? [el("span", { class: "flapping", text: "flapping" })] : []),
        ),
        el("td", { text: a.siteId ?? "" }),
        el("td", { text: a.deviceId ?? a.agentId ?? "" }),
        el("td", { text: ago(a.startsAt), title: new Date(a.startsAt).toISOString() }),
        el("td", { text: a.state === "acknowledged" ? `ack by ${a.ack?.by ?? "?"}` : a.state }),
        el("td", {}, a.state === "firing" ? el("button", { text: "Ack", onclick: () => void ack(a) }) : ""),
      ),
    ),
  );
}

function sparkline(points, cls, max = 100) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  if (points.length > 1) {
    const t0 = points[0].ts;
    const span = Math.max(1, points[points.length - 1].ts - t0);
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("class", cls);
    line.setAttribute(
      "points",
      points
        .map(
          (p) =>
            `${(((p.ts - t0) / span) * 120).toFixed(1)},${(24 - (Math.min(p.value, max) / max) * 22 - 1).toFixed(1)}`,
        )
        .join(" "),
    );
    svg.append(line);
  }
  return svg;
}

async function loadSpark(cell, deviceId) {
  const to = Date.now();
  const q = (field) =>
    `/devices/${encodeURIComponent(deviceId)}/series?field=${field}&from=${to - 3_600_000}&to=${to}&step=60000`;
  try {
    const [cpu, mem] = await Promise.all([api(q("cpuPct")), api(q("memPct"))]);
    const svg = sparkline(cpu.points, "cpu");
    const memSvg = sparkline(mem.points, "mem");
    for (const line of memSvg.querySelectorAll("polyline")) svg.append(line);
    const last = (s) => (s.points.length ? `${Math.round(s.points[s.points.length - 1].value)}%` : "–");
    cell.replaceChildren(svg, ` ${last(cpu)} / ${last(mem)}`);
  } catch {
    cell.textContent = "–";
  }
}

async function loadDevices() {
  const q = $("#search").value.trim();
  const page = await api(`/devices?limit=200${q ? `&q=${encodeURIComponent(q)}` : ""}`);
  $("#device-count").textContent = `(${page.total})`;
  $("#devices tbody").replaceChildren(
    ...page.items.map((d) => {
      const spark = el("td", { text: "…" });
      void loadSpark(spark, d.deviceId);
      return el(
        "tr",
        {},
        el("td", { text: d.systemName ? `${d.deviceId} (${d.systemName})` : d.deviceId }),
        el("td", { text: d.model ?? d.family }),
        el("td", { text: d.siteId }),
        el("td", { text: d.address }),
        el("td", { text: d.softwareVersion ?? "" }),
        el("td", {
          class: d.reachable ? "up" : "down",
          text: d.reachable ? "yes" : `no (${ago(d.lastSeen)})`,
        }),
        spark,
      );
    }),
  );
}

// ---- Firmware compliance and rollouts (hidden when the collector has no rollout service: 404) ----

/** Which actions make sense in which rollout state; the API has the last word (409 otherwise). */
const ROLLOUT_ACTIONS = {
  pending: ["start", "cancel"],
  running: ["pause", "cancel", "retry-failed"],
  paused: ["resume", "cancel", "retry-failed"],
  halted: ["resume", "cancel", "retry-failed"],
  completed: ["retry-failed"],
  cancelled: [],
};
const ACTIVE_STATES = ["downloading", "installing", "rebooting", "verifying"];
let openRollout;

const countOf = (r, ...states) => states.reduce((n, s) => n + (r.counts[s] ?? 0), 0);

async function loadCompliance() {
  const [catalog, report] = await Promise.all([api("/firmware/catalog"), api("/firmware/compliance")]);
  $("#catalog-state").textContent = catalog.loaded
    ? `(catalog v${catalog.version}, expires ${catalog.expires ?? "?"})`
    : `(no catalog${catalog.error ? `: ${catalog.error}` : ""})`;
  const total = report.devices.length;
  const card = (label, n, cls) =>
    el(
      "div",
      { class: "card" },
      el("strong", { class: cls, text: String(n) }),
      el("div", { class: "muted", text: `${label}${total ? ` (${Math.round((n / total) * 100)}%)` : ""}` }),
    );
  $("#compliance").replaceChildren(
    card("current", report.counts.current, "up"),
    card("behind", report.counts.behind, "down"),
    card("ahead", report.counts.ahead, ""),
    card("unknown", report.counts.unknown, "note"),
  );
}

async function rolloutAction(r, action) {
  const reason = window.prompt(`${action} rollout "${r.name}"\nReason (recorded in the audit log):`);
  if (!reason) return;
  try {
    await api(`/rollouts/${encodeURIComponent(r.id)}/${action}`, {
      method: "POST",
      body: JSON.stringify({ reason }),
    });
    showError("");
  } catch (err) {
    showError(err.message);
  }
  await loadRollouts().catch((err) => showError(err.message));
}

function rolloutRow(r) {
  const total = r.waves.reduce((n, w) => n + w.size, 0);
  const done = countOf(r, "succeeded", "failed", "skipped");
  const wave = r.waves[r.currentWave];
  const bar = el("progress", { max: String(Math.max(1, total)), value: String(done) });
  return el(
    "tr",
    {},
    el(
      "td",
      {},
      el("button", { class: "link", text: r.name, onclick: () => void showRollout(r) }),
      el("div", { class: "note", text: r.targets.map((t) => `${t.model} → ${t.version}`).join(", ") }),
    ),
    el("td", {
      class: `rollout-${r.state}`,
      text: r.stateReason ? `${r.state} (${r.stateReason})` : r.state,
    }),
    el("td", { text: wave ? `${r.currentWave + 1}/${r.waves.length} ${wave.name}: ${wave.state}` : "–" }),
    el("td", {}, bar, ` ${done}/${total}`),
    el("td", {
      text: `✓ ${countOf(r, "succeeded")}  ✗ ${countOf(r, "failed")}  ⟳ ${countOf(r, ...ACTIVE_STATES)}  … ${countOf(r, "queued", "waitingWindow", "deferred")}`,
    }),
    el("td", { text: ago(r.createdAt), title: `${new Date(r.createdAt).toISOString()} by ${r.createdBy}` }),
    el(
      "td",
      {},
      ...(ROLLOUT_ACTIONS[r.state] ?? []).map((a) =>
        el("button", { text: a, onclick: () => void rolloutAction(r, a) }),
      ),
    ),
  );
}

async function loadRolloutDevices() {
  if (!openRollout) return;
  const state = $("#rollout-device-state").value;
  const devices = await api(
    `/rollouts/${encodeURIComponent(openRollout.id)}/devices${state ? `?state=${encodeURIComponent(state)}` : ""}`,
  );
  $("#rollout-devices tbody").replaceChildren(
    ...devices.map((d) =>
      el(
        "tr",
        {},
        el("td", { text: d.deviceId }),
        el("td", { text: d.siteId }),
        el("td", { text: d.model }),
        el("td", { text: String(d.wave + 1) }),
        el("td", { text: d.fromVersion ?? "" }),
        el("td", { text: d.targetVersion }),
        el("td", {
          class: d.state === "succeeded" ? "up" : d.state === "failed" ? "down" : "",
          text: d.state,
        }),
        el("td", { text: d.reason ?? "" }),
        el("td", { text: String(d.attempts) }),
      ),
    ),
  );
}

async function showRollout(r) {
  openRollout = r;
  $("#rollout-title").textContent = `${r.name} — ${r.state}`;
  $("#rollout-detail").hidden = false;
  await loadRolloutDevices().catch((err) => showError(err.message));
}

async function loadRollouts() {
  let rollouts;
  try {
    rollouts = await api("/rollouts");
  } catch (err) {
    if (err.status === 404) {
      $("#firmware").hidden = true;
      return;
    }
    throw err;
  }
  $("#firmware").hidden = false;
  $("#rollout-count").textContent = `(${rollouts.length})`;
  $("#rollouts tbody").replaceChildren(...rollouts.map(rolloutRow));
  if (openRollout) {
    const current = rollouts.find((r) => r.id === openRollout.id);
    if (current) await showRollout(current);
  }
  await loadCompliance();
}

function setStreamState(on) {
  const pill = $("#stream-state");
  pill.textContent = on ? "stream: live" : "stream: off";
  pill.className = `pill ${on ? "on" : "off"}`;
}

function openStream() {
  stream?.close();
  // EventSource cannot send headers: the API accepts the token as ?token= on this route only.
  stream = new EventSource(`${API}/alerts/stream?token=${encodeURIComponent(token)}`);
  stream.addEventListener("open", () => setStreamState(true));
  stream.addEventListener("error", () => setStreamState(false));
  stream.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    const list = $("#events");
    list.prepend(
      el("li", {
        class: `sev-${a.severity}`,
        text: `${new Date(a.updatedAt).toLocaleTimeString()} ${a.state.toUpperCase()} ${a.severity} ${a.summary}`,
      }),
    );
    while (list.children.length > 200) list.lastElementChild.remove();
    void loadAlerts().catch((err) => showError(err.message));
  });
}

async function refresh() {
  try {
    await Promise.all([loadSummary(), loadAlerts(), loadDevices(), loadRollouts()]);
    showError("");
  } catch (err) {
    showError(err.message);
  }
}

function signIn() {
  $("#main").hidden = false;
  $("#logout").hidden = false;
  $("#token").hidden = true;
  $("#signin").hidden = true;
  openStream();
  void refresh();
}

function signOut() {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stream?.close();
  setStreamState(false);
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#token").hidden = false;
  $("#signin").hidden = false;
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("#token").value.trim();
  if (!value) return;
  token = value;
  $("#token").value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  signIn();
});
$("#logout").addEventListener("click", signOut);
$("#rollout-device-state").addEventListener(
  "change",
  () => void loadRolloutDevices().catch((err) => showError(err.message)),
);
$("#rollout-close").addEventListener("click", () => {
  openRollout = undefined;
  $("#rollout-detail").hidden = true;
});
$("#search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => void loadDevices().catch((err) => showError(err.message)), 250);
});
setInterval(() => {
  if (token) void refresh();
}, 30_000);

if (token) signIn();
