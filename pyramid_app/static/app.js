// The Provisioner status page: plain JavaScript, no framework, no build step.
// Every text reaches the page through textContent or text nodes, never
// innerHTML; nothing is inline (the Content-Security-Policy forbids it).
// Changes send the session's CSRF token; live updates come from GET /v1/events.

const MAX_OUTPUT_LINES = 2000; // of a run's output kept in the page
const PAGE_SIZE = 100;
const RECONNECT_MS = 3000;
const REFRESH_MS = 250; // job counts, runs, warnings: refreshed at most 4 times a second
// last_id without a page of events (counting them reads no event)
const HEAD_QUERY = "limit=0";
const JOB_STATES = ["dependent", "queued", "launching", "running", "succeeded", "failed", "cancelled", "lost"];
const FINISHED_JOBS = new Set(["succeeded", "failed", "cancelled", "lost"]);
const FINISHED_RUNS = new Set(["successful", "failed", "cancelled", "lost"]);

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const session = { user: null, csrf: null };
const stream = { source: null, retry: null, lost: false, stale: false };
let view = null; // what is shown: {scope, refresh(), onEvent(event), leave()}
let generation = 0; // bumped on every navigation: late answers of the last view are dropped
let lastEventId = 0;
// What tests/browser reads: how long each event took from its commit to the page.
window.provisioner = { latencies: [], events: 0 };

// -- DOM and API helpers ------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child); // strings become text nodes
  }
  return node;
}

function table(testName, headings) {
  const tbody = el("tbody");
  const node = el("table", { "data-test": testName },
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { text: h })))), tbody);
  return { node, tbody };
}

const cell = (text, props = {}) => el("td", { text: text ?? "", ...props });
const stateCell = (state, field = "state") => cell(state, { "data-field": field, class: `state-${state}` });
const facts = (pairs) => el("dl", { class: "facts" },
  pairs.map(([name, value, field]) => [el("dt", { text: name }), el("dd", { text: value ?? "—", "data-field": field })]));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class ApiError extends Error {
  constructor(status, body) {
    super(body && typeof body === "object" && body.message ? body.message : `The service answered ${status}.`);
    this.status = status;
    this.details = body && Array.isArray(body.details) ? body.details : [];
    this.code = body && body.error;
  }
}

async function api(method, path, body, retried = false) {
  const headers = { Accept: "application/json" };
  const options = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD", "OPTIONS"].includes(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, { message: `The service does not answer (${error.message}).` });
  }
  const type = response.headers.get("Content-Type") || "";
  const data = response.status === 204 ? null
    : type.startsWith("application/json") ? await response.json() : await response.text();
  if (response.ok) return data;
  const error = new ApiError(response.status, data);
  // signed in again in another tab: learn the new session's CSRF token and try once more
  if (error.code === "CSRFTokenInvalid" && !retried && await loadSession()) return api(method, path, body, true);
  if (response.status === 401 && !path.startsWith("/v1/auth/session")) sessionEnded("Your session has ended; sign in again.");
  throw error;
}

function errorText(error) {
  if (!(error instanceof ApiError)) return `The page failed: ${error.message}`;
  const details = error.details.filter((d) => d.description)
    .map((d) => `${d.name ? `${d.name}: ` : ""}${d.description}`);
  return [error.message, ...details].join("\n");
}

function showError(error, where = $("error")) {
  if (!(error instanceof ApiError)) console.error(error);
  where.textContent = errorText(error);
  where.hidden = false;
}

function clearMessage(where) {
  where.textContent = "";
  where.hidden = true;
}

// An event handler that reports what went wrong in `where` (the page's banner by default).
function action(fn, where) {
  return async (event) => {
    if (event) event.preventDefault();
    const target = where || $("error");
    clearMessage(target);
    try {
      await fn(event);
    } catch (error) {
      if (error.name !== "AbortError") showError(error, target);
    }
  };
}

// Calls fn at once, then at most once per `ms` while calls keep coming (the last one always runs).
function throttled(fn, ms = REFRESH_MS) {
  let timer = null;
  let again = false;
  const run = () => {
    Promise.resolve(fn()).catch((error) => { if (error.status !== 401) showError(error); });
    timer = setTimeout(() => {
      timer = null;
      if (again) { again = false; run(); }
    }, ms);
  };
  return () => { if (timer) again = true; else run(); };
}

function formError() {
  return el("p", { class: "error", role: "alert", "data-test": "form-error", hidden: true });
}

// -- signing in and out -------------------------------------------------------------

async function loadSession() {
  try {
    const found = await api("GET", "/v1/auth/session");
    session.user = found.user;
    session.csrf = found.csrf_token;
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

async function signIn() {
  const body = { username: $("signin-username").value, password: $("signin-password").value };
  const started = await api("POST", "/v1/auth/session", body);
  $("signin-password").value = "";
  session.user = started.user;
  session.csrf = started.csrf_token;
  signedIn();
}

function signedIn() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  $("whoami").textContent = `Signed in as ${session.user}`;
  document.body.dataset.signedIn = "true";
  route();
}

async function signOut() {
  await api("DELETE", "/v1/auth/session");
  sessionEnded("");
}

function sessionEnded(message) {
  if (!session.csrf && document.body.dataset.signedIn === "false") return;
  session.user = session.csrf = null;
  leaveView();
  $("app").hidden = true;
  $("signout").hidden = true;
  $("whoami").textContent = "";
  $("signin").hidden = false;
  document.body.dataset.signedIn = "false";
  const where = $("signin-error");
  if (message) { where.textContent = message; where.hidden = false; } else clearMessage(where);
  $("signin-username").focus();
}

// -- navigation and the live event stream ------------------------------------------

const links = {
  projects: () => "#/",
  project: (p) => `#/p/${enc(p)}`,
  cluster: (p, c) => `#/p/${enc(p)}/c/${enc(c)}`,
};

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "p" && parts[1] && parts[2] === "c" && parts[3]) return { kind: "cluster", project: parts[1], cluster: parts[3] };
  if (parts[0] === "p" && parts[1]) return { kind: "project", project: parts[1] };
  return { kind: "projects" };
}

function leaveView() {
  generation += 1;
  closeStream();
  if (view && view.leave) view.leave();
  view = null;
  $("view").replaceChildren();
}

function route() {
  leaveView();
  const where = parseHash();
  const crumbs = [el("a", { href: links.projects(), text: "Projects" })];
  if (where.project) crumbs.push("›", el("a", { href: links.project(where.project), text: where.project }));
  if (where.cluster) crumbs.push("›", el("span", { text: where.cluster }));
  $("breadcrumbs").replaceChildren(...crumbs);
  const root = $("view");
  view = where.kind === "cluster" ? clusterView(root, where.project, where.cluster)
    : where.kind === "project" ? projectView(root, where.project) : projectsView(root);
  document.body.dataset.view = where.kind;
  connect();
}

// First the newest event id, then the data shown, then the stream from that id: no event falls in between.
async function connect() {
  const current = generation;
  stream.retry = null;
  let after = null;
  try {
    after = (await api("GET", `/v1/events?${HEAD_QUERY}&${view.scope}`)).last_id;
  } catch (error) {
    if (error.status === 401) return;
  }
  if (current !== generation) return;
  try {
    await Promise.all([view.refresh(), refreshWarnings()]);
    stream.stale = false;
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
  if (current !== generation) return;
  if (typeof after !== "number") {
    streamLost();
    stream.retry = setTimeout(() => { if (current === generation) connect(); }, RECONNECT_MS);
    return;
  }
  openStream(after, current);
}

function openStream(after, current) {
  closeStream();
  lastEventId = after;
  const source = new EventSource(`/v1/events?after=${after}&${view.scope}`);
  stream.source = source;
  document.body.dataset.stream = "connecting";
  source.onopen = () => {
    if (current !== generation) return;
    stream.lost = false;
    $("stream-lost").hidden = true;
    document.body.dataset.stream = "open";
    if (stream.stale) { // the stream resumes after the last event seen, unless the feed pruned what came after it
      stream.stale = false;
      catchUp(current).catch((error) => { if (error.status !== 401) showError(error); });
    }
  };
  source.onmessage = (message) => {
    if (current !== generation) return;
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    if (typeof event.id !== "number" || event.id <= lastEventId) return;
    lastEventId = event.id;
    handleEvent(event);
  };
  source.onerror = () => {
    if (current !== generation) return;
    streamLost();
    if (source.readyState === EventSource.CLOSED) { // refused (503, 401): the browser gives up, so do it here
      source.close();
      stream.retry = setTimeout(() => { if (current === generation) connect(); }, RECONNECT_MS);
    }
  };
}

async function catchUp(current) {
  const feed = await api("GET", `/v1/events?limit=0&after=${lastEventId}`);
  if (current === generation && feed.first_id > lastEventId + 1) await Promise.all([view.refresh(), refreshWarnings()]);
}

function streamLost() {
  stream.lost = stream.stale = true;
  $("stream-lost").hidden = false;
  document.body.dataset.stream = "lost";
}

function closeStream() {
  if (stream.source) stream.source.close();
  if (stream.retry) clearTimeout(stream.retry);
  stream.source = stream.retry = null;
  document.body.dataset.stream = "closed";
}

function handleEvent(event) {
  window.provisioner.events += 1;
  if (event.type === "warning") warningsLater();
  view.onEvent(event);
  const shown = Date.now(); // the page changed (what is refreshed later is refreshed within REFRESH_MS)
  const latencies = window.provisioner.latencies;
  latencies.push({ id: event.id, type: event.type, ms: shown - Date.parse(event.at) });
  if (latencies.length > 10000) latencies.splice(0, 5000);
  document.body.dataset.lastEvent = String(event.id);
}

// -- warnings ------------------------------------------------------------------------

async function refreshWarnings() {
  const warnings = await api("GET", "/v1/warnings");
  $("warnings-list").replaceChildren(...warnings.map((w) => el("li", { "data-test": "warning" },
    el("span", { text: w.msg }), " ",
    el("span", { class: "muted", text: `(${w.project || "service"}, ${w.count}×, last ${w.last_date})` }))));
  $("warnings").hidden = warnings.length === 0;
}
const warningsLater = throttled(refreshWarnings);

async function dismissWarnings() {
  await api("DELETE", "/v1/warnings");
  await refreshWarnings();
}

// -- projects ------------------------------------------------------------------------

function projectsView(root) {
  const list = table("projects", ["Project", "Description", "Clusters", "State"]);
  const error = formError();
  const name = el("input", { id: "project-name", required: true, placeholder: "lowercase name" });
  const description = el("input", { id: "project-description" });
  const form = el("form", { id: "project-form" }, el("h3", { text: "New project" }),
    el("label", {}, "Name ", name), el("label", {}, "Description ", description),
    el("button", { type: "submit", text: "Create" }), error);
  root.append(el("h2", { text: "Projects" }), list.node, form);

  async function refresh() {
    const page = await api("GET", "/v1/projects?limit=1000");
    list.tbody.replaceChildren(...page.items.map((p) => el("tr", { "data-test": "project-row", "data-name": p.name },
      el("td", {}, el("a", { href: links.project(p.name), text: p.name })), cell(p.description),
      cell(p.clusters, { class: "num" }), stateCell(p.state))));
    if (page.next) list.tbody.append(el("tr", {}, cell(`… and ${page.count - page.items.length} more`)));
  }
  const later = throttled(refresh);
  form.addEventListener("submit", action(async () => {
    await api("POST", "/v1/projects", { name: name.value, description: description.value });
    form.reset();
    await refresh();
  }, error));
  return { scope: "types=project,cluster,warning", refresh, onEvent: (e) => { if (e.type !== "warning") later(); } };
}

// -- a project: its clusters and the form that creates one ------------------------------------

function progressText(progress) {
  if (!progress) return "";
  const now = progress.current_task ? ` · now: ${progress.current_task}` : "";
  return `${progress.tasks_done ?? 0} tasks done${now}`;
}

function projectView(root, project) {
  const base = `/v1/projects/${enc(project)}`;
  const list = table("clusters", ["Cluster", "Service", "State", "Reason", "Nodes", "Progress"]);
  const rows = new Map();
  const creator = el("div", { id: "create-cluster" });
  root.append(el("h2", { text: `Clusters of ${project}` }), list.node, creator);

  function showCluster(c) {
    if (c.purged) { // its record was removed: so is its row
      if (rows.has(c.name)) rows.get(c.name).remove();
      rows.delete(c.name);
      return;
    }
    const row = el("tr", { "data-test": "cluster-row", "data-name": c.name },
      el("td", {}, el("a", { href: links.cluster(project, c.name), text: c.name })),
      cell(`${c.service} ${c.version}`), stateCell(c.state), cell(c.state_reason, { "data-field": "state_reason" }),
      cell((c.nodes || []).length, { class: "num", "data-field": "nodes" }),
      cell(progressText(c.progress), { "data-field": "progress" }));
    const old = rows.get(c.name);
    if (old) old.replaceWith(row); else list.tbody.append(row);
    rows.set(c.name, row);
  }

  async function refresh() {
    const [page] = await Promise.all([api("GET", `${base}/clusters?limit=1000`),
      creator.childElementCount ? null : buildCreateForm(creator, project, showCluster)]);
    rows.clear();
    list.tbody.replaceChildren();
    page.items.forEach(showCluster);
  }

  function onEvent(event) {
    if (event.type === "cluster" && event.project === project && event.object) showCluster(event.object);
  }
  return { scope: `project=${enc(project)}&types=cluster,project,warning`, refresh, onEvent };
}

// A field of the create form from one option's spec (pyramid_app/catalog.py: type, default,
// minimum, maximum, choices, pattern, secret, kind; lists have items).
function optionField(name, spec, description, credentials) {
  const id = `option-${name}`;
  const props = { id, name, "data-option": name };
  let input;
  if (spec.type === "boolean") {
    input = el("input", { ...props, type: "checkbox", checked: spec.default === true });
  } else if (spec.type === "credential") {
    const names = credentials.filter((c) => !spec.kind || c.kind === spec.kind).map((c) => c.name);
    input = el("select", props, el("option", { value: "", text: "(none)" }),
      names.map((n) => el("option", { value: n, text: n })));
  } else if (spec.choices && spec.type !== "list") {
    input = el("select", props, spec.choices.map((c) => el("option", { value: c, text: c })));
    input.value = String(spec.default ?? spec.choices[0]);
  } else if (spec.type === "list") {
    input = el("textarea", { ...props, rows: 2, placeholder: "one per line" });
    input.value = (spec.default || []).join("\n");
  } else if (spec.secret) {
    input = el("input", { ...props, type: "password", autocomplete: "new-password", placeholder: "secret" });
  } else {
    const numeric = spec.type === "integer" || spec.type === "number";
    input = el("input", { ...props, type: numeric ? "number" : "text", step: spec.type === "number" ? "any" : null,
      min: numeric ? spec.minimum : null, max: numeric ? spec.maximum : null,
      placeholder: { size: "like 512M or 4G", duration: "like 30s or 2h" }[spec.type] });
    if (spec.default !== undefined && spec.default !== null) input.value = String(spec.default);
  }
  const bounds = [spec.minimum !== undefined ? `min ${spec.minimum}` : "", spec.maximum !== undefined ? `max ${spec.maximum}` : ""]
    .filter(Boolean).join(", ");
  const node = el("div", { class: "field" },
    el("label", { for: id, text: `${name} (${spec.type}${spec.secret ? ", secret" : ""}${bounds ? `, ${bounds}` : ""})` }),
    input, description ? el("p", { class: "hint", text: description }) : null);
  return { node, value: () => fieldValue(spec, input) };
}

// The value to send, or undefined to leave the option at its default.
function fieldValue(spec, input) {
  const scalar = (type, text) => {
    if (type === "integer" && /^-?\d+$/.test(text.trim())) return parseInt(text, 10);
    if (type === "number" && text.trim() !== "" && !Number.isNaN(Number(text))) return Number(text);
    if (type === "boolean") return text === "true";
    return text; // the service says what is wrong with it
  };
  let value;
  if (spec.type === "boolean") value = input.checked;
  else if (spec.type === "list") value = input.value.split("\n").map((s) => s.trim()).filter(Boolean).map((s) => scalar(spec.items, s));
  else if (spec.secret && input.value === "") return undefined;
  else if (input.value === "" && spec.type !== "string" && spec.type !== "credential") return undefined;
  else value = scalar(spec.type, input.value);
  return JSON.stringify(value) === JSON.stringify(spec.default) ? undefined : value;
}

async function buildCreateForm(root, project, showCluster) {
  const [services, credentials] = await Promise.all([api("GET", "/v1/services?limit=1000"),
    api("GET", `/v1/projects/${enc(project)}/credentials?limit=1000`)]);
  const service = el("select", { id: "create-service" });
  for (const s of services.items) for (const v of s.versions) service.append(el("option", { value: `${s.name}/${v}`, text: `${s.name} ${v}` }));
  const name = el("input", { id: "create-name", size: 30, placeholder: "optional: the id when empty" });
  const sections = el("div", { id: "create-options" });
  const error = formError();
  const form = el("form", { id: "create-form" }, el("h3", { text: "New cluster" }),
    el("label", {}, "Service ", service), el("label", {}, "Name ", name), sections,
    el("button", { type: "submit", id: "create-submit", text: "Create cluster" }), error);
  root.replaceChildren(form);
  let fields = [];

  async function showOptions() {
    fields = [];
    sections.replaceChildren();
    if (!service.value) return;
    const [s, v] = service.value.split("/");
    const spec = (await api("GET", `/v1/services/${enc(s)}/${enc(v)}`)).options || {};
    const descriptions = spec.descriptions || {};
    for (const [section, title] of [["required", "Required"], ["optional", "Optional"], ["advanced", "Advanced"]]) {
      const options = Object.entries(spec[section] || {});
      if (!options.length) continue;
      const made = options.map(([n, o]) => ({ name: n, ...optionField(n, o, descriptions[n], credentials.items) }));
      fields.push(...made);
      const children = made.map((f) => f.node);
      sections.append(section === "advanced"
        ? el("details", { "data-section": section }, el("summary", { text: title }), children)
        : el("fieldset", { "data-section": section }, el("legend", { text: title }), children));
    }
  }
  service.addEventListener("change", action(showOptions, error));
  form.addEventListener("submit", action(async () => {
    const [s, v] = service.value.split("/");
    const options = {};
    for (const f of fields) {
      const value = f.value();
      if (value !== undefined) options[f.name] = value;
    }
    const body = { service: s, version: v, options };
    if (name.value.trim()) body.name = name.value.trim();
    showCluster(await api("POST", `/v1/projects/${enc(project)}/clusters`, body));
    name.value = "";
  }, error));
  await showOptions();
}

// -- a cluster: state, nodes, runs and their output, jobs -----------------------------------

function clusterView(root, project, clusterName) {
  const base = `/v1/projects/${enc(project)}/clusters/${enc(clusterName)}`;
  const detail = el("div", { id: "cluster-detail" });
  const actionError = formError();
  const nodesCount = el("input", { id: "scale-nodes", type: "number", min: 1 });
  const retry = el("button", { type: "button", id: "cluster-retry", text: "Retry the failed step" });
  const teardown = el("button", { type: "button", id: "cluster-teardown", class: "danger", text: "Tear down" });
  const scaleForm = el("form", { id: "scale-form", class: "actions" }, el("label", {}, "Nodes ", nodesCount),
    el("button", { type: "submit", text: "Scale" }), retry, teardown, actionError);
  const nodes = table("nodes", ["Node", "Address", "Groups"]);
  const runs = table("runs", ["Run", "Step", "Status", "Playbook", "Started", "Finished", ""]);
  const outputTitle = el("h3", { id: "run-output-title" });
  const output = el("pre", { id: "run-output", class: "output", "data-test": "run-output" });
  const outputPanel = el("div", { id: "run-output-panel", hidden: true }, outputTitle, output);
  const counts = el("div", { id: "job-counts" });
  const jobsPanel = el("div", { id: "jobs-panel" });
  const jobDetail = el("div", { id: "job-detail", class: "panel", hidden: true });
  root.append(el("h2", { text: `Cluster ${clusterName}` }), detail, scaleForm, el("h3", { text: "Nodes" }), nodes.node,
    el("h3", { text: "Runs" }), runs.node, outputPanel, el("h3", { text: "Jobs" }), counts, jobsPanel, jobDetail);

  let follower = null; // {run, controller} of the output being followed
  let openJob = null; // the name of the job shown in jobDetail

  function showCluster(c) {
    if (c.purged) {
      detail.replaceChildren(el("p", { class: "muted", text: "This cluster's record was removed (purged)." }));
      detail.dataset.state = "purged";
      return;
    }
    detail.replaceChildren(facts([
      ["State", c.state, "state"], ["Reason", c.state_reason, "state_reason"], ["Step", c.step, "step"],
      ["Service", `${c.service} ${c.version}`], ["Progress", progressText(c.progress), "progress"],
      ["Created by", c.created_by], ["Options", Object.entries(c.options || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("  ")],
      ["Warnings", (c.warnings || []).join("; ") || null, "warnings"]]));
    detail.dataset.state = c.state;
    if (document.activeElement !== nodesCount) nodesCount.value = c.options && c.options.nodes !== undefined ? c.options.nodes : "";
    scaleForm.querySelector("label").hidden = !(c.options && "nodes" in c.options);
    retry.disabled = c.state !== "failed";
    teardown.disabled = c.state === "deleting" || c.state === "deleted";
    nodes.tbody.replaceChildren(...(c.nodes || []).map((n) => el("tr", { "data-test": "node-row" },
      cell(n.name), cell(n.address), cell((n.groups || []).join(", ")))));
  }

  async function loadCluster() { showCluster(await api("GET", base)); }

  scaleForm.addEventListener("submit", action(async () => {
    showCluster(await api("PATCH", base, { options: { nodes: parseInt(nodesCount.value, 10) } }));
  }, actionError));
  retry.addEventListener("click", action(async () => showCluster(await api("POST", `${base}/retry`)), actionError));
  let armed = null;
  teardown.addEventListener("click", action(async () => {
    if (!armed) { // a second click within 5 s tears down
      teardown.textContent = "Click again to tear down";
      armed = setTimeout(() => { armed = null; teardown.textContent = "Tear down"; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    teardown.textContent = "Tear down";
    showCluster(await api("DELETE", base));
  }, actionError));

  // runs and their live output
  async function loadRuns() {
    const page = await api("GET", `${base}/runs?limit=1000`);
    runs.tbody.replaceChildren(...page.items.map((r) => el("tr", { "data-test": "run-row", "data-name": r.name },
      cell(r.name), cell(r.step), stateCell(r.status, "status"), cell(r.playbook), cell(r.started_at), cell(r.finished_at),
      el("td", {}, el("button", { type: "button", "data-test": "run-output-open", text: "Output", onclick: () => follow(r) })))));
    const shown = follower && page.items.find((r) => r.name === follower.run);
    if (shown) outputTitle.textContent = `Output of run ${shown.name} (${shown.step}, ${shown.status})`;
  }
  const runsLater = throttled(loadRuns);

  function follow(run) {
    if (follower) follower.controller.abort();
    follower = { run: run.name, controller: new AbortController() };
    outputPanel.hidden = false;
    outputTitle.textContent = `Output of run ${run.name} (${run.step}, ${run.status})`;
    followOutput(`${base}/runs/${enc(run.name)}`, output, follower.controller.signal)
      .catch((error) => { if (error.name !== "AbortError") showError(error); });
  }

  // job counts per state for each reporting group, counted by the server
  async function loadCounts() {
    let answer;
    try {
      answer = await api("GET", `${base}/jobs/counts`);
    } catch (error) {
      if (error.status === 401) throw error;
      counts.replaceChildren(el("p", { class: "error", text: `No job counts: ${error.message}` }));
      return;
    }
    const grid = table("job-counts", ["Reporting group", ...JOB_STATES]);
    grid.node.classList.add("counts");
    const row = (label, grp, states) => el("tr", { "data-test": "count-row", "data-grp": grp ?? "" }, cell(label),
      JOB_STATES.map((s) => {
        const n = states[s] || 0;
        const link = el("a", { href: "#", text: n, onclick: (e) => { e.preventDefault(); filterJobs({ state: s, rep_grp: grp ?? "" }); } });
        return el("td", { class: n ? "num" : "num zero", "data-state": s }, link);
      }));
    grid.tbody.append(row("all", null, answer.states || {}));
    for (const [grp, states] of Object.entries(answer.rep_grps || {}).sort()) grid.tbody.append(row(grp, grp, states));
    counts.replaceChildren(grid.node);
  }
  const countsLater = throttled(loadCounts);

  // submitting, cancelling and listing jobs
  const jobs = jobsList(base, jobsPanel, (name) => showJob(name));
  const filterJobs = (filters) => jobs.filter(filters);

  async function showJob(name) {
    openJob = name;
    jobDetail.hidden = false;
    const job = await api("GET", `${base}/jobs/${enc(name)}?std=true`);
    if (openJob !== name) return;
    const error = formError();
    const cancel = el("button", { type: "button", id: "job-detail-cancel", class: "danger", text: "Cancel this job",
      disabled: FINISHED_JOBS.has(job.state),
      onclick: action(async () => { jobs.showJob(await api("DELETE", `${base}/jobs/${enc(name)}`)); await showJob(name); }, error) });
    jobDetail.replaceChildren(el("h3", { text: `Job ${job.name}` }),
      facts([["State", job.state, "state"], ["Command", job.cmd, "cmd"], ["Reporting group", job.rep_grp],
        ["Node", job.node], ["Attempts", job.attempts], ["Exit code", job.exit_code, "exit_code"],
        ["Fail reason", job.fail_reason, "fail_reason"], ["CPUs, memory, time", `${job.cpus}, ${job.memory}, ${job.time}`],
        ["Started", job.started_at], ["Ended", job.ended_at], ["Wall time (s)", job.walltime]]),
      cancel, " ", el("button", { type: "button", text: "Close", onclick: () => { openJob = null; jobDetail.hidden = true; } }), error,
      el("h3", {}, "Standard output (the last 64 KiB; ", el("a", { href: `${base}/jobs/${enc(name)}/stdout`, target: "_blank", rel: "noopener", text: "all of it" }), ")"),
      el("pre", { class: "output", id: "job-stdout", text: job.stdout || "" }),
      el("h3", {}, "Standard error (", el("a", { href: `${base}/jobs/${enc(name)}/stderr`, target: "_blank", rel: "noopener", text: "all of it" }), ")"),
      el("pre", { class: "output", id: "job-stderr", text: job.stderr || "" }));
    if (jobDetail.dataset.job !== name) jobDetail.scrollIntoView({ block: "nearest" });
    jobDetail.dataset.job = name;
  }
  const jobLater = throttled(() => (openJob ? showJob(openJob) : null));

  async function refresh() {
    await Promise.all([loadCluster(), loadRuns(), loadCounts(), jobs.load(), openJob ? showJob(openJob) : null]);
  }

  function onEvent(event) {
    if (event.project !== project || event.cluster !== clusterName || !event.object) return;
    if (event.type === "cluster") showCluster(event.object);
    else if (event.type === "run") runsLater();
    else if (event.type === "job") {
      countsLater();
      jobs.showJob(event.object);
      if (openJob === event.object.name) jobLater();
    }
  }

  function leave() { if (follower) follower.controller.abort(); }
  return { scope: `project=${enc(project)}&types=cluster,run,job,warning,project`, refresh, onEvent, leave };
}

function jobsList(base, root, open) {
  const submitError = formError();
  const notice = el("p", { class: "notice", "data-test": "notice", hidden: true });
  const input = (id, props = {}) => el("input", { id, ...props });
  const cmd = input("job-cmd", { required: true, size: 40, placeholder: "a shell command" });
  const count = input("job-count", { type: "number", min: 1, max: 10000, value: 1 });
  const cpus = input("job-cpus", { type: "number", min: 0, step: "any", value: 1 });
  const memory = input("job-memory", { value: "1G", size: 6 });
  const repGrp = input("job-rep-grp", { placeholder: "manually_added" });
  const submitForm = el("form", { id: "job-form" }, el("strong", { text: "Submit jobs " }),
    el("label", {}, "Command ", cmd), el("label", {}, "Count ", count), el("label", {}, "CPUs ", cpus),
    el("label", {}, "Memory ", memory), el("label", {}, "Reporting group ", repGrp),
    el("button", { type: "submit", id: "job-submit", text: "Submit" }), notice, submitError);

  const stateSelect = (id, anyText) => el("select", { id }, el("option", { value: "", text: anyText }),
    JOB_STATES.map((s) => el("option", { value: s, text: s })));
  const cancelState = stateSelect("cancel-state", "any state");
  const cancelGrp = input("cancel-rep-grp", { placeholder: "any group" });
  const cancelError = formError();
  const cancelNotice = el("p", { class: "notice", "data-test": "notice", hidden: true });
  const cancelForm = el("form", { id: "cancel-form" }, el("strong", { text: "Cancel jobs " }),
    el("label", {}, "in state ", cancelState), el("label", {}, "of group ", cancelGrp),
    el("button", { type: "submit", id: "cancel-submit", class: "danger", text: "Cancel matching jobs" }),
    cancelNotice, cancelError);

  const filterState = stateSelect("filter-state", "every state");
  const filterGrp = input("filter-rep-grp", { placeholder: "every group" });
  const filterNode = input("filter-node", { placeholder: "every node" });
  const filterForm = el("form", { id: "jobs-filter" }, el("strong", { text: "Show jobs " }),
    el("label", {}, "in state ", filterState), el("label", {}, "of group ", filterGrp), el("label", {}, "on node ", filterNode),
    el("button", { type: "submit", text: "Show" }));
  const summary = el("p", { id: "jobs-summary", class: "muted" });
  const list = table("jobs", ["Job", "State", "Group", "Node", "Attempts", "Exit", "Reason", "Command", ""]);
  const first = el("button", { type: "button", id: "jobs-first", text: "First page", hidden: true });
  const next = el("button", { type: "button", id: "jobs-next", text: "Next page", hidden: true });
  const listError = formError();
  root.append(submitForm, cancelForm, filterForm, summary, list.node, first, " ", next, listError);

  const rows = new Map(); // name -> {row, cells} of the jobs on the page shown
  let current = null; // the path of the page shown
  let nextPage = null;

  function firstPage() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [name, field] of [["state", filterState], ["rep_grp", filterGrp], ["node", filterNode]]) {
      if (field.value.trim()) query.set(name, field.value.trim());
    }
    return `${base}/jobs?${query}`;
  }

  async function load(path = current || firstPage()) {
    const page = await api("GET", path);
    current = path;
    nextPage = page.next;
    rows.clear();
    list.tbody.replaceChildren();
    page.items.forEach(showJob);
    const filtered = [filterState, filterGrp, filterNode].some((f) => f.value.trim());
    summary.textContent = `${page.count} job${page.count === 1 ? "" : "s"}${filtered ? " match" : ""}; showing ${page.items.length}.`;
    next.hidden = !nextPage;
    first.hidden = path === firstPage();
  }

  // One job's row, from a job or an event's job summary (which has no cmd: the row keeps its own).
  function showJob(job) {
    let entry = rows.get(job.name);
    if (job.purged) {
      if (entry) entry.row.remove();
      rows.delete(job.name);
      return;
    }
    if (!entry) {
      if (job.cmd === undefined) return; // not on the page shown
      const cells = {};
      const row = el("tr", { "data-test": "job-row", "data-name": job.name },
        el("td", {}, el("a", { href: "#", text: job.name, onclick: (e) => { e.preventDefault(); open(job.name).catch((err) => showError(err, listError)); } })),
        ["state", "rep_grp", "node", "attempts", "exit_code", "fail_reason", "cmd"].map((field) => {
          cells[field] = el("td", { "data-field": field, class: field === "cmd" ? "cmd" : null });
          return cells[field];
        }),
        el("td", {}, cells.cancel = el("button", { type: "button", "data-test": "job-cancel", class: "danger", text: "Cancel",
          onclick: action(async () => showJob(await api("DELETE", `${base}/jobs/${enc(job.name)}`)), listError) })));
      entry = { row, cells };
      rows.set(job.name, entry);
      list.tbody.append(row);
    }
    for (const field of ["state", "rep_grp", "node", "attempts", "exit_code", "fail_reason", "cmd"]) {
      if (job[field] !== undefined) entry.cells[field].textContent = job[field] ?? "";
    }
    entry.cells.state.className = `state-${job.state}`;
    entry.cells.cancel.disabled = FINISHED_JOBS.has(job.state);
  }

  submitForm.addEventListener("submit", action(async () => {
    clearMessage(notice);
    const spec = { cmd: cmd.value, cpus: Number(cpus.value), memory: memory.value.trim() || "1G" };
    if (repGrp.value.trim()) spec.rep_grp = repGrp.value.trim();
    const n = Math.max(1, parseInt(count.value, 10) || 1);
    const answer = await api("POST", `${base}/jobs`, n === 1 ? spec : Array.from({ length: n }, () => ({ ...spec })));
    notice.textContent = `Submitted ${n} job${n === 1 ? "" : "s"}.`;
    notice.hidden = false;
    if (n === 1) showJob(answer);
    await load();
  }, submitError));

  cancelForm.addEventListener("submit", action(async () => {
    clearMessage(cancelNotice);
    const query = new URLSearchParams();
    if (cancelState.value) query.set("state", cancelState.value);
    if (cancelGrp.value.trim()) query.set("rep_grp", cancelGrp.value.trim());
    const answer = await api("DELETE", `${base}/jobs?${query}`);
    cancelNotice.textContent = `Cancelled ${answer.count} job${answer.count === 1 ? "" : "s"}.`;
    cancelNotice.hidden = false;
    await load();
  }, cancelError));

  filterForm.addEventListener("submit", action(() => load(firstPage()), listError));
  next.addEventListener("click", action(() => load(nextPage), listError));
  first.addEventListener("click", action(() => load(firstPage()), listError));

  function filter({ state = "", rep_grp = "", node = "" }) {
    filterState.value = state;
    filterGrp.value = rep_grp;
    filterNode.value = node;
    load(firstPage()).catch((error) => showError(error, listError));
  }
  return { load: () => load(), showJob, filter };
}

// A run's output, read as it comes (GET .../stdout?follow=true streams until the run ends),
// keeping the last MAX_OUTPUT_LINES lines in the page.
async function followOutput(runPath, pre, signal) {
  let lines = [];
  let partial = "";
  let dropped = 0;
  let received = 0; // whole lines read: where to start again
  let drawing = null;
  const draw = () => {
    drawing = null;
    const head = dropped ? `[the first ${dropped} lines are not shown here]\n` : "";
    pre.textContent = head + lines.join("\n") + (lines.length ? "\n" : "") + partial;
    pre.scrollTop = pre.scrollHeight;
  };
  const append = (text) => {
    const parts = (partial + text).split("\n");
    partial = parts.pop();
    received += parts.length;
    lines = lines.concat(parts);
    if (lines.length > MAX_OUTPUT_LINES) {
      dropped += lines.length - MAX_OUTPUT_LINES;
      lines = lines.slice(-MAX_OUTPUT_LINES);
    }
    if (!drawing) drawing = setTimeout(draw, 50);
  };
  pre.textContent = "";
  pre.dataset.done = "false";
  let finished = false;
  for (;;) {
    const response = await fetch(`${runPath}/stdout?follow=true&start_line=${received}`, { signal, credentials: "same-origin" });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    partial = ""; // an unfinished line comes again whole
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      append(value);
    }
    if (finished) break;
    // the stream ended: when the run has too, one more read takes what came in between
    finished = FINISHED_RUNS.has((await api("GET", runPath)).status);
    if (!finished) await sleep(1000);
    if (signal.aborted) return;
  }
  if (drawing) clearTimeout(drawing);
  draw();
  pre.dataset.done = "true";
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  $("signin-form").addEventListener("submit", action(signIn, $("signin-error")));
  $("signout").addEventListener("click", action(signOut));
  $("warnings-dismiss").addEventListener("click", action(dismissWarnings));
  $("error").addEventListener("click", () => clearMessage($("error")));
  window.addEventListener("hashchange", () => { if (session.csrf) route(); });
  try {
    if (await loadSession()) signedIn();
    else sessionEnded("");
  } catch (error) {
    sessionEnded("");
    showError(error, $("signin-error"));
  }
}

start();
