/* cvlab leaderboard page, live panel: the runs a grid driver is running now.
 *
 * The driver (cvlab.grid.live_watch) rewrites experiments/live.js and live.json at each epoch's
 * end. A page opened from file:// loads live.js once (fetch() is blocked there; a reload shows
 * the latest state); a page served over http (`cvlab serve`) polls live.json every 2 s and
 * updates the panel in place, and the status cell of a run already in the table. Runs that
 * ended after the page was generated stay in the panel with their final state; once the driver
 * has rebuilt the page, a served page reloads itself onto it.
 * Values from runs are only ever inserted as text or attributes, never parsed as HTML.
 * Formatting: prettier --print-width 100.
 */
(function () {
  "use strict";

  const POLL_MS = 2000;
  const panel = document.getElementById("live");
  if (!panel) return;
  const body = panel.querySelector("tbody");
  const meta = panel.querySelector(".live-meta");
  const generated = Date.parse(document.body.dataset.generated || "") || 0;
  const served = location.protocol === "http:" || location.protocol === "https:";
  let reloading = false;

  function el(tag, attrs, ...children) {
    const ns = ["svg", "polyline", "line"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
    const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function fmt(value) {
    if (typeof value !== "number") return value === null || value === undefined ? "" : String(value);
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }

  function duration(seconds) {
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  /** The first metric's curve (and its val_ twin) as a small SVG: it grows with each epoch. */
  function sparkline(curve) {
    if (!curve || !curve.epoch || curve.epoch.length < 1) return "";
    const names = Object.keys(curve).filter((k) => k !== "epoch");
    const first = names.find((k) => !k.startsWith("val_")) || names[0];
    if (!first) return "";
    const series = [first, `val_${first}`].filter((k) => curve[k]);
    const values = series.flatMap((k) => curve[k]).filter((v) => typeof v === "number");
    if (!values.length) return "";
    const [w, h, pad] = [140, 36, 3];
    const xs = curve.epoch;
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs, x0 + 1);
    const y0 = Math.min(...values);
    const y1 = Math.max(...values, y0 + 1e-12);
    const svg = el("svg", {
      width: w,
      height: h,
      viewBox: `0 0 ${w} ${h}`,
      class: "live-curve",
      role: "img",
      "aria-label": `${series.join(", ")} by epoch`,
    });
    series.forEach((name, i) => {
      const points = curve[name]
        .map((v, j) =>
          typeof v === "number"
            ? `${(pad + ((xs[j] - x0) / (x1 - x0)) * (w - 2 * pad)).toFixed(1)},` +
              `${(h - pad - ((v - y0) / (y1 - y0)) * (h - 2 * pad)).toFixed(1)}`
            : null,
        )
        .filter(Boolean);
      svg.append(
        el("polyline", {
          points: points.join(" "),
          fill: "none",
          stroke: i ? "#f28e2b" : "#4e79a7",
          "stroke-width": 1.5,
        }),
      );
    });
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${series.join(" and ")}, epochs ${x0}–${Math.max(...xs)}`;
    svg.append(title);
    return svg;
  }

  function shown(run) {
    if (run.status === "running" || run.status === "pending") return true;
    return Boolean(run.ended) && Date.parse(run.ended) >= generated;
  }

  function row(run) {
    const link = run.links.notebook || run.links.folder;
    const latest = Object.entries(run.latest || {})
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(" · ");
    const epoch = run.epochs_planned ? `${run.epoch}/${run.epochs_planned}` : String(run.epoch);
    let eta = "";
    if (run.eta) {
      const at = new Date(run.eta).toLocaleTimeString();
      eta = run.eta_s === null ? at : `${at} (in ${duration(run.eta_s)})`;
    } else if (run.ended && run.status !== "running") {
      eta = `ended ${new Date(run.ended).toLocaleTimeString()}`;
    }
    return el(
      "tr",
      { "data-key": run.key, class: `live-${run.status}` },
      el("td", {}, el("a", { href: link, title: run.id }, run.name)),
      el("td", {}, run.grid),
      el("td", {}, el("span", { class: `status s-${run.status}` }, run.status)),
      el("td", { class: "live-epoch" }, epoch),
      el("td", { class: "live-latest" }, latest),
      el("td", {}, run.s_per_epoch === null ? "" : fmt(run.s_per_epoch)),
      el("td", { class: "live-eta" }, eta),
      el("td", {}, sparkline(run.curve)),
    );
  }

  /** A run already in the table (an earlier, interrupted try) shows its live status there. */
  function updateTable(run) {
    const tr = document.querySelector(`#runs tr[data-key="${CSS.escape(run.key)}"]`);
    const cell = tr && tr.querySelector('td[data-col="status"] span.status');
    if (cell && cell.textContent !== run.status) {
      cell.textContent = run.status;
      cell.className = `status s-${run.status}`;
    }
  }

  function render(data) {
    if (!data || !Array.isArray(data.runs)) return;
    const runs = data.runs.filter(shown);
    body.replaceChildren(...runs.map(row));
    runs.forEach(updateTable);
    panel.hidden = runs.length === 0;
    const running = runs.filter((r) => r.status === "running").length;
    const grids = Object.entries(data.grids || {});
    const gone = grids.filter(([, g]) => !g.alive).map(([name]) => name);
    meta.textContent =
      `${running} running · data of ${new Date(data.updated).toLocaleTimeString()}` +
      (served ? " · updates by itself" : " · reload the page for the latest state") +
      (gone.length && runs.some((r) => gone.includes(r.grid))
        ? ` · driver ended: ${gone.filter((g) => runs.some((r) => r.grid === g)).join(", ")}`
        : "");
    if (served) reloadWhenRebuilt(grids);
  }

  /** A driver that ended after this page was generated rebuilds it: load the new page. */
  function reloadWhenRebuilt(grids) {
    const ended = grids
      .map(([, g]) => Date.parse((g.driver && g.driver.ended) || ""))
      .filter((t) => t > generated);
    if (!ended.length || reloading) return;
    const since = Math.max(...ended);
    const mark = `cvlab-live-reloaded-${since}`;
    if (sessionStorage.getItem(mark)) return; // once per ended driver: never a reload loop
    fetch("index.html", { method: "HEAD", cache: "no-store" })
      .then((response) => {
        const modified = Date.parse(response.headers.get("Last-Modified") || "");
        if (modified >= since - 1000 && !reloading) {
          reloading = true;
          sessionStorage.setItem(mark, "1");
          location.reload();
        }
      })
      .catch(() => {});
  }

  function poll() {
    fetch("live.json", { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : null))
      .then(render)
      .catch(() => {})
      .finally(() => setTimeout(poll, POLL_MS));
  }

  window.cvlabLive = { render }; // for the tests
  render(window.CVLAB_LIVE);
  if (served) setTimeout(poll, POLL_MS);
})();
