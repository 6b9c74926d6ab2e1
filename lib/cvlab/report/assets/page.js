/* cvlab leaderboard page: grid selector, sorting, filters, search, run comparison and charts.
 *
 * cvlab/report/page.py renders the complete table, so the page reads without JavaScript. This
 * script only moves, hides and highlights the table's rows and columns, and draws the comparison
 * and per-grid charts from the JSON page.py embeds (a page opened from file:// cannot fetch).
 * The charts are small hand-written SVG rather than a charting library: a few dozen lines each,
 * no bundle to ship or audit, nothing from a CDN.
 * Values from runs are only ever inserted with textContent / setAttribute, never parsed as HTML.
 * Formatting: prettier --print-width 100.
 */
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("cvlab-data").textContent);
  const table = document.getElementById("runs");
  const runs = DATA.runs; // in leaderboard order: by grid, best first
  const runByKey = new Map();
  const rowByKey = new Map(); // run key ("grid/run_id") → <tr>
  const cellsByKey = new Map(); // run key → {column key → <td>}
  const headRow = table.tHead.rows[0];
  const headCells = cellMap(headRow.cells);
  const allColumns = Array.from(headRow.cells, (th) => th.dataset.col);
  // Tableau 10: distinct colours for the runs being compared, in the order they were picked.
  const PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
  ];
  const NOT_SET = "(not set)";

  const state = {
    grid: "", // "" = all grids
    search: [], // lower-case words, all must match
    hiddenStatuses: new Set(),
    notebook: "",
    params: {}, // parameter name → the value text rows must have (null: parameter not set)
    sort: null, // {col, dir: 1 | -1}; null keeps the leaderboard order
    showConstant: false,
    selected: [], // run keys picked for comparison, in picking order (their chart colour)
    comparing: false,
    onlyDiff: false, // the comparison shows only the rows where runs differ
    curveMetric: null,
    includeStale: false, // stale runs (older code of their notebook) ranked with the current ones
  };
  const ui = {}; // the controls, made once by buildControls()

  runs.forEach((run, i) => {
    run.order = i;
    run.text = searchText(run);
    runByKey.set(run.key, run);
  });
  for (const tr of table.tBodies[0].rows) {
    rowByKey.set(tr.dataset.key, tr);
    cellsByKey.set(tr.dataset.key, cellMap(tr.cells));
  }

  // ---- small helpers ------------------------------------------------------------------------

  function cellMap(cells) {
    const map = {};
    for (const cell of cells) map[cell.dataset.col] = cell;
    return map;
  }

  /** el("td", {class: "x"}, "text", child, [more]): an element; strings become text nodes. */
  function el(tag, attrs, ...children) {
    return build(document.createElement(tag), attrs, children);
  }

  function svgEl(tag, attrs, ...children) {
    return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
  }

  function build(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(typeof child === "object" ? child : String(child));
      }
    }
    return node;
  }

  /** A number as the table prints it (four significant digits); anything else as text. */
  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }

  /** Numbers in numeric order ("0.001" < "0.01", "1e-05" included), before text. */
  function compareValues(a, b) {
    const x = Number(a);
    const y = Number(b);
    const xNum = a !== "" && !Number.isNaN(x);
    const yNum = b !== "" && !Number.isNaN(y);
    if (xNum && yNum) return x - y;
    if (xNum !== yNum) return xNum ? -1 : 1;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function searchText(run) {
    const parts = [run.name, run.grid, run.id, run.status, run.notebook];
    if (run.error) parts.push(run.error.type, run.error.message);
    for (const [name, value] of Object.entries(run.params)) parts.push(`${name}=${value}`);
    for (const [name, value] of Object.entries(run.metrics)) parts.push(`${name}=${fmt(value)}`);
    return parts.join(" ").toLowerCase();
  }

  function isMissing(value) {
    return value === null || value === undefined || value === "";
  }

  function currentView() {
    return state.grid ? DATA.grids[state.grid].view : DATA.view;
  }

  function shownRuns() {
    return runs.filter((run) => !rowByKey.get(run.key).hidden);
  }

  function gridRuns() {
    return state.grid ? runs.filter((run) => run.grid === state.grid) : runs;
  }

  function distinctValues(list, param) {
    const values = new Set(list.map((run) => (param in run.params ? run.params[param] : null)));
    return Array.from(values).sort((a, b) =>
      a === null ? 1 : b === null ? -1 : compareValues(a, b),
    );
  }

  /** Label one category in this many, so that at most 12 labels share an axis. */
  function labelEvery(values) {
    return Math.ceil(values.length / 12);
  }

  /** Long category labels cut to fit a chart; the full text goes in a tooltip. */
  function shorten(text) {
    return text.length > 12 ? text.slice(0, 11) + "…" : text;
  }

  /** Whether the run is its grid's best: among current runs, or among all with the toggle on. */
  function isBest(run) {
    return state.includeStale ? run.best_with_stale : run.best;
  }

  /** The grid's rank chart (computed in Python, the same the PNG figure draws). */
  function rankChart(grid) {
    return (state.includeStale && grid.rank_chart_with_stale) || grid.rank_chart;
  }

  /** The star and row highlight follow the "include stale runs" toggle. */
  function applyBest() {
    for (const run of runs) {
      const best = isBest(run);
      rowByKey.get(run.key).classList.toggle("best", best);
      const cell = cellsByKey.get(run.key).best;
      cell.replaceChildren(
        best ? el("span", { class: "star", title: "best run of its grid" }, "★ best") : "",
      );
    }
  }

  function colourOf(key) {
    return PALETTE[Math.max(0, state.selected.indexOf(key)) % PALETTE.length];
  }

  // ---- columns: what varies in the chosen grid comes first, constants fold away -------------

  function layout() {
    const view = currentView();
    const lead = ["pick", "best", "run", "status", "rank"].concat(state.grid ? [] : ["grid"]);
    const tail = ["duration", "hardware", "date"].concat(state.grid ? [] : ["notebook"], ["files", "id"]);
    const constant = state.showConstant ? Object.keys(view.constant).map((p) => "p:" + p) : [];
    return lead.concat(
      view.varied.map((p) => "p:" + p),
      view.metrics.map((m) => "m:" + m),
      tail,
      constant,
    );
  }

  function applyColumns() {
    const shown = layout();
    const visible = new Set(shown);
    const order = shown.concat(allColumns.filter((col) => !visible.has(col)));
    const place = (cells, tr) => {
      for (const col of order) {
        if (!cells[col]) continue;
        cells[col].hidden = !visible.has(col);
        tr.appendChild(cells[col]);
      }
    };
    place(headCells, headRow);
    for (const [key, tr] of rowByKey) place(cellsByKey.get(key), tr);
    const grid = state.grid && DATA.grids[state.grid];
    headCells.rank.textContent =
      grid && grid.metric ? `${grid.metric} (${grid.mode})` : "rank value";
    renderConstants();
  }

  function renderConstants() {
    const box = document.getElementById("constants");
    const constant = Object.entries(currentView().constant);
    box.replaceChildren();
    box.hidden = constant.length === 0;
    if (!constant.length) return;
    box.append(state.grid ? "Same in every run of this grid: " : "Same in every run: ");
    constant.forEach(([name, value], i) =>
      box.append(i ? ", " : "", el("code", {}, `${name}=${value}`)),
    );
    const toggle = el(
      "button",
      { type: "button", id: "toggle-constant" },
      state.showConstant ? "hide these columns" : "show as columns",
    );
    toggle.addEventListener("click", () => {
      state.showConstant = !state.showConstant;
      applyColumns();
    });
    box.append(" ", toggle);
  }

  // ---- sorting --------------------------------------------------------------------------------

  function sortValue(run, col) {
    if (col.startsWith("p:")) return run.params[col.slice(2)];
    if (col.startsWith("m:")) return run.metrics[col.slice(2)];
    switch (col) {
      case "pick":
        return state.selected.includes(run.key) ? 0 : 1;
      case "best":
        return isBest(run) ? 0 : 1;
      case "run":
        return run.name;
      case "rank":
        return run.rank;
      case "duration":
        return run.duration;
      case "date":
        return run.started;
      case "id":
        return run.id;
      default:
        return run[col]; // grid, status, notebook
    }
  }

  function compareRuns(a, b) {
    if (state.sort) {
      const x = sortValue(a, state.sort.col);
      const y = sortValue(b, state.sort.col);
      if (isMissing(x) !== isMissing(y)) return isMissing(x) ? 1 : -1; // missing last, both ways
      const order = isMissing(x) ? 0 : compareValues(x, y);
      if (order) return order * state.sort.dir;
    }
    return a.order - b.order;
  }

  function sortBy(col) {
    if (col === "files") return;
    const again = state.sort && state.sort.col === col;
    state.sort = { col, dir: again ? -state.sort.dir : 1 };
    applySort();
  }

  function applySort() {
    const body = table.tBodies[0];
    for (const run of runs.slice().sort(compareRuns)) body.appendChild(rowByKey.get(run.key));
    for (const th of headRow.cells) {
      if (state.sort && state.sort.col === th.dataset.col) {
        th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  // ---- filters ------------------------------------------------------------------------------

  function matches(run) {
    if (state.grid && run.grid !== state.grid) return false;
    if (state.hiddenStatuses.has(run.status)) return false;
    if (state.notebook && run.notebook !== state.notebook) return false;
    for (const [name, value] of Object.entries(state.params)) {
      if ((name in run.params ? run.params[name] : null) !== value) return false;
    }
    return state.search.every((word) => run.text.includes(word));
  }

  function applyFilters() {
    let shown = 0;
    for (const run of runs) {
      const keep = matches(run);
      rowByKey.get(run.key).hidden = !keep;
      shown += keep ? 1 : 0;
    }
    ui.count.textContent = `${shown} of ${gridRuns().length} runs shown`;
    updatePickAll();
    renderGridPanel();
  }

  function resetFilters() {
    state.search = [];
    state.hiddenStatuses.clear();
    state.notebook = "";
    state.params = {};
    ui.search.value = "";
    ui.notebook.value = "";
    buildStatusChips();
    buildParamFilters();
    applyFilters();
  }

  function selectGrid(name) {
    if (name && !DATA.grids[name]) return;
    state.grid = name;
    state.params = {};
    state.showConstant = false;
    ui.grid.value = name;
    for (const link of document.querySelectorAll("a.grid-link")) {
      link.classList.toggle("current", link.dataset.grid === name);
    }
    ui.notebookLabel.hidden = Boolean(name); // one notebook per grid
    for (const section of document.querySelectorAll("section.seed-groups")) {
      section.hidden = Boolean(name) && section.dataset.grid !== name;
    }
    buildStatusChips();
    buildParamFilters();
    applyColumns();
    applyFilters();
  }

  // ---- controls -----------------------------------------------------------------------------

  function buildControls() {
    const box = document.getElementById("controls");
    ui.grid = el(
      "select",
      { id: "grid-select" },
      el("option", { value: "" }, `all grids (${runs.length} runs)`),
      Object.values(DATA.grids).map((g) =>
        el("option", { value: g.name }, `${g.name} (${g.runs} runs)`),
      ),
    );
    ui.grid.addEventListener("change", () => selectGrid(ui.grid.value));

    ui.search = el("input", {
      type: "search",
      id: "search",
      placeholder: "search: name, x=1, error…",
    });
    ui.search.addEventListener("input", () => {
      state.search = ui.search.value.toLowerCase().split(/\s+/).filter(Boolean);
      applyFilters();
    });

    const notebooks = Array.from(new Set(runs.map((run) => run.notebook))).sort();
    ui.notebook = el(
      "select",
      { id: "notebook-filter" },
      el("option", { value: "" }, "any"),
      notebooks.map((nb) => el("option", { value: nb }, nb)),
    );
    ui.notebook.addEventListener("change", () => {
      state.notebook = ui.notebook.value;
      applyFilters();
    });
    ui.notebookLabel = el("label", {}, "notebook", ui.notebook);

    ui.statuses = el("fieldset", { class: "chips", id: "status-filter" });
    ui.params = el("div", { class: "param-filters", id: "param-filters" });
    ui.count = el("span", { class: "count", id: "shown-count" });
    const reset = el("button", { type: "button", id: "reset-filters" }, "reset filters");
    reset.addEventListener("click", resetFilters);

    ui.compare = el(
      "button",
      { type: "button", id: "compare-button", class: "primary", disabled: true },
      "Compare selected (0)",
    );
    ui.compare.addEventListener("click", () => {
      state.comparing = true;
      renderCompare();
      document.getElementById("compare").scrollIntoView({ block: "start" });
    });
    ui.pickAll = el("input", {
      type: "checkbox",
      id: "pick-all",
      "aria-label": "select the runs shown",
    });
    ui.pickAll.addEventListener("change", () => {
      const shown = shownRuns().map((run) => run.key);
      state.selected = state.selected.filter((key) => !shown.includes(key));
      if (ui.pickAll.checked) state.selected.push(...shown);
      syncPicks();
    });
    headCells.pick.append(ui.pickAll);
    ui.includeStale = el("input", { type: "checkbox", id: "include-stale" });
    ui.includeStale.addEventListener("change", () => {
      state.includeStale = ui.includeStale.checked;
      applyBest();
      renderGridPanel();
    });
    const staleCount = runs.filter((run) => run.stale).length;
    const staleToggle = staleCount
      ? el(
          "label",
          {
            title:
              "stale runs ran an older version of their notebook's code: shown, but not ranked " +
              "against the current runs unless this is ticked",
          },
          ui.includeStale,
          ` include stale runs (${staleCount})`,
        )
      : null;
    const clear = el("button", { type: "button", id: "clear-selection" }, "clear selection");
    clear.addEventListener("click", () => {
      state.selected = [];
      syncPicks();
    });

    box.replaceChildren(
      el("label", {}, "grid", ui.grid),
      ui.search,
      ui.statuses,
      ui.notebookLabel,
      reset,
      ...(staleToggle ? [staleToggle] : []), // replaceChildren would write a null as "null"
      ui.count,
      ui.params,
      ui.compare,
      clear,
      el("span", { class: "meta" }, "tick runs, or click points and lines in the grid charts"),
    );
    buildStatusChips();
    buildParamFilters();
  }

  function buildStatusChips() {
    const counts = {};
    for (const run of gridRuns()) counts[run.status] = (counts[run.status] || 0) + 1;
    ui.statuses.replaceChildren(el("legend", { hidden: true }, "status"));
    for (const status of DATA.statuses) {
      if (!counts[status]) continue;
      const box = el("input", { type: "checkbox", value: status, name: "status" });
      box.checked = !state.hiddenStatuses.has(status);
      box.addEventListener("change", () => {
        if (box.checked) state.hiddenStatuses.delete(status);
        else state.hiddenStatuses.add(status);
        applyFilters();
      });
      ui.statuses.append(
        el("label", { class: "s-" + status }, box, `${status} (${counts[status]})`),
      );
    }
  }

  function buildParamFilters() {
    ui.params.replaceChildren();
    const list = gridRuns();
    for (const param of currentView().varied) {
      const values = distinctValues(list, param);
      const select = el(
        "select",
        { "data-param": param },
        el("option", { value: "" }, "any"),
        values.map((v, i) => el("option", { value: String(i) }, v === null ? NOT_SET : v)),
      );
      select.addEventListener("change", () => {
        if (select.value === "") delete state.params[param];
        else state.params[param] = values[Number(select.value)];
        applyFilters();
      });
      ui.params.append(el("label", {}, param, select));
    }
  }

  // ---- selection for comparison -------------------------------------------------------------

  function togglePick(key, on) {
    const at = state.selected.indexOf(key);
    const want = on === undefined ? at < 0 : on;
    if (want && at < 0) state.selected.push(key);
    else if (!want && at >= 0) state.selected.splice(at, 1);
    else return;
    syncPicks();
  }

  /** The header's box is ticked when every run shown is selected. */
  function updatePickAll() {
    const shown = shownRuns();
    ui.pickAll.checked = shown.length > 0 && shown.every((run) => state.selected.includes(run.key));
  }

  function syncPicks() {
    for (const [key, cells] of cellsByKey) {
      const on = state.selected.includes(key);
      cells.pick.querySelector("input").checked = on;
      rowByKey.get(key).classList.toggle("picked", on);
    }
    updatePickAll();
    ui.compare.textContent = `Compare selected (${state.selected.length})`;
    ui.compare.disabled = state.selected.length < 2;
    if (state.comparing) renderCompare();
    renderGridPanel();
  }

  // ---- comparison: parameters side by side, curves overlaid --------------------------------

  /** The comparison table's rows: `{section}` headings and `{label, values}`, one value a run. */
  function compareRows(picked) {
    const row = (label, value) => ({ label, values: picked.map(value) });
    const rows = [
      { section: "run" },
      row("grid", (r) => r.grid),
      row("status", (r) => r.status),
      row("rank value", (r) => fmt(r.rank)),
      row("run id", (r) => r.id),
    ];
    if (picked.some((r) => r.parent))
      rows.push(row("parent", (r) => (r.parent ? r.parent.ref : "")));
    rows.push({ section: "parameters" });
    for (const p of new Set(picked.flatMap((r) => Object.keys(r.params)))) {
      rows.push(row(p, (r) => (p in r.params ? r.params[p] : NOT_SET)));
    }
    rows.push({ section: "metrics" });
    for (const m of new Set(picked.flatMap((r) => Object.keys(r.metrics)))) {
      rows.push(row(m, (r) => fmt(r.metrics[m])));
    }
    rows.push(row("duration (s)", (r) => fmt(r.duration)));
    rows.push(row("backend · device · precision", (r) => r.hardware));
    return rows;
  }

  function renderCompare() {
    const panel = document.getElementById("compare");
    panel.hidden = !state.comparing;
    if (!state.comparing) return;
    const picked = state.selected.map((key) => runByKey.get(key));
    const onlyDiff = el("input", { type: "checkbox", id: "only-differences" });
    const close = el("button", { type: "button", id: "compare-close" }, "close");
    close.addEventListener("click", () => {
      state.comparing = false;
      renderCompare();
    });
    panel.replaceChildren(
      el(
        "div",
        { class: "panel-head" },
        el("h2", {}, `Comparing ${picked.length} runs`),
        el("label", {}, onlyDiff, " only differences"),
        close,
      ),
    );
    if (picked.length < 2) {
      panel.append(el("p", { class: "meta" }, "Select at least two runs."));
      return;
    }
    const head = el(
      "tr",
      {},
      el("th", {}, ""),
      picked.map((run) =>
        el(
          "th",
          {},
          el("span", { class: "swatch", style: `background:${colourOf(run.key)}` }),
          run.links.notebook ? el("a", { href: run.links.notebook }, run.name) : run.name,
        ),
      ),
    );
    const body = compareRows(picked).map(({ section, label, values }) => {
      if (section) {
        return el("tr", { class: "section" }, el("th", { colspan: picked.length + 1 }, section));
      }
      const differ = new Set(values).size > 1;
      return el(
        "tr",
        { class: differ ? "diff" : "same" },
        el("th", {}, label),
        values.map((v) => el("td", {}, v)),
      );
    });
    const compareTable = el(
      "table",
      { class: state.onlyDiff ? "compare only-diff" : "compare", id: "compare-table" },
      el("thead", {}, head),
      el("tbody", {}, body),
    );
    onlyDiff.checked = state.onlyDiff;
    onlyDiff.addEventListener("change", () => {
      state.onlyDiff = onlyDiff.checked;
      compareTable.classList.toggle("only-diff", state.onlyDiff);
    });
    panel.append(el("div", { class: "compare-body" }, compareTable, curvesBlock(picked)));
  }

  /** The picked runs' curves overlaid: one metric, training solid, validation dashed. */
  function curvesBlock(picked) {
    const bases = new Set();
    for (const run of picked) {
      for (const col of Object.keys(run.curves || {}))
        if (col !== "epoch") bases.add(col.replace(/^val_/, ""));
    }
    const names = Array.from(bases).sort(
      (a, b) => (a !== "loss") - (b !== "loss") || a.localeCompare(b),
    );
    const block = el("div", { id: "compare-curves" }, el("h3", {}, "Training curves"));
    if (!names.length)
      return build(block, {}, [el("p", { class: "meta" }, "No per-epoch history for these runs.")]);
    if (!names.includes(state.curveMetric)) state.curveMetric = names[0];
    const select = el(
      "select",
      { id: "curve-metric" },
      names.map((n) => el("option", { value: n }, n)),
    );
    select.value = state.curveMetric;
    const chart = el("div", { class: "chart-holder" });
    const draw = () => {
      const base = state.curveMetric;
      const series = [];
      for (const run of picked) {
        const curves = run.curves || {};
        for (const [col, dashed] of [
          [base, false],
          ["val_" + base, true],
        ]) {
          if (!curves[col]) continue;
          series.push({
            key: run.key,
            colour: colourOf(run.key),
            dashed,
            label: `${run.name} · ${col}`,
            points: curves.epoch.map((x, i) => [x, curves[col][i]]),
          });
        }
      }
      chart.replaceChildren(lineChart(series, { yLabel: base }));
    };
    select.addEventListener("change", () => {
      state.curveMetric = select.value;
      draw();
    });
    draw();
    const legend = el(
      "div",
      { class: "legend" },
      picked.map((run) =>
        el(
          "span",
          {},
          el("span", { class: "swatch", style: `background:${colourOf(run.key)}` }),
          run.name,
        ),
      ),
      el("span", { class: "meta" }, "solid: training · dashed: validation"),
    );
    return build(block, {}, [el("label", {}, "metric ", select), legend, chart]);
  }

  // ---- per-grid charts: rank metric by parameter, parallel coordinates ---------------------

  function renderGridPanel() {
    const panel = document.getElementById("grid-panel");
    const grid = state.grid && DATA.grids[state.grid];
    panel.hidden = !grid;
    if (!grid) return;
    const chart = rankChart(grid);
    const visible = (point) => !rowByKey.get(point.key).hidden;
    const shown = chart.points.filter(visible).map((point) => runByKey.get(point.key));
    panel.replaceChildren(
      el(
        "div",
        { class: "panel-head" },
        el("h2", {}, `${grid.name}: ${grid.metric || "no rank metric"} by parameter`),
        el(
          "span",
          { class: "meta" },
          `${shown.length} ranked run${shown.length === 1 ? "" : "s"} shown · click a point or line to select its run`,
        ),
      ),
    );
    let note = null;
    if (!grid.metric) note = "This grid has no rank_by metric.";
    else if (!chart.panels.length) note = "No parameter varies in this grid.";
    else if (!shown.length) note = "No ranked run among the runs shown.";
    if (note) {
      panel.append(el("p", { class: "meta" }, note));
      return;
    }
    if (chart.points.some((point) => runByKey.get(point.key).synthetic)) {
      panel.append(
        el("p", { class: "meta" }, "Only runs on synthetic data are ranked in this grid so far."),
      );
    }
    const small = chart.panels.map((p) =>
      el(
        "figure",
        { class: "chart rank-by-param" },
        dotChart(p, chart.points, grid),
        el("figcaption", {}, `${grid.metric} by ${p.param}`),
      ),
    );
    const parallel = el(
      "figure",
      { class: "chart parallel" },
      parallelChart(shown, chart.panels, grid),
      el(
        "figcaption",
        {},
        `parameters → ${grid.metric}; darker is better, gold is the grid's best run`,
      ),
    );
    panel.append(el("div", { class: "charts" }, small, parallel));
    if (grid.search) panel.append(searchBlock(grid));
  }

  /** A searched or pruned grid: best value so far against trials and against epochs spent (a
   * step line; each complete trial's value a dot, trials without one (pruned, failed) grey ticks
   * on the floor), and each parameter's importance as bars (or why it is not known yet). */
  function searchBlock(grid) {
    const search = grid.search;
    const metric = grid.metric || "rank value";
    const charts = [
      ["trial", "trials"],
      ["spent", "epochs spent"],
    ].map(([x, xLabel]) =>
      el(
        "figure",
        { class: "chart search-progress", "data-x": x },
        stepChart(search.trials, x, xLabel, `best ${metric} so far`),
        el("figcaption", {}, `best ${metric} so far against ${xLabel}`),
      ),
    );
    const found = search.importance;
    let importance;
    if (found.note) importance = el("p", { class: "meta importance-note" }, found.note);
    else {
      importance = el(
        "figure",
        { class: "chart importance-chart" },
        el(
          "table",
          { class: "importance" },
          el(
            "tbody",
            {},
            found.params.map(([param, value]) =>
              el(
                "tr",
                { "data-param": param },
                el("th", {}, param),
                el(
                  "td",
                  {},
                  el("span", {
                    class: "bar",
                    style: `width:${(Math.max(0, Math.min(1, value)) * 12).toFixed(2)}rem`,
                  }),
                ),
                el("td", {}, value.toFixed(3)),
              ),
            ),
          ),
        ),
        el("figcaption", {}, `parameter importance (${found.evaluator}, ${found.trials} trials)`),
      );
    }
    return el(
      "div",
      { class: "search-charts" },
      el("h3", {}, `${grid.name}: search${search.how ? " · " + search.how : ""}`),
      el("div", { class: "charts" }, charts, importance),
    );
  }

  function stepChart(trials, xKey, xLabel, yLabel) {
    const width = 360;
    const height = 220;
    const m = { l: 58, r: 14, t: 10, b: 34 };
    const svg = plotFrame(width, height, `${yLabel} against ${xLabel}`);
    const valued = trials.filter((t) => t.value !== null);
    const reached = trials.filter((t) => t.best !== null);
    if (!reached.length) {
      const text = svgEl("text", { x: width / 2, y: height / 2 }, "no complete trial yet");
      return build(svg, {}, [text]);
    }
    const x = scale(extent([0, ...trials.map((t) => t[xKey])]), [m.l, width - m.r]);
    const y = scale(extent(valued.map((t) => t.value)), [height - m.b, m.t]);
    yAxis(svg, y, m.l, width - m.r, yLabel);
    for (const tick of x.ticks(6, true)) {
      const at = { x: x(tick), y: height - m.b + 14, "text-anchor": "middle" };
      svg.append(svgEl("text", at, fmt(tick)));
    }
    svg.append(
      svgEl("text", { x: (m.l + width - m.r) / 2, y: height - 4, "text-anchor": "middle" }, xLabel),
    );
    let d = "";
    reached.forEach((t, i) => {
      const [px, py] = [x(t[xKey]).toFixed(1), y(t.best).toFixed(1)];
      d += i ? `H${px}V${py}` : `M${px},${py}`;
    });
    d += `H${x(trials[trials.length - 1][xKey]).toFixed(1)}`;
    svg.append(svgEl("path", { class: "series best-so-far", stroke: "#1f4e8c", d }));
    for (const t of trials) {
      const run = runByKey.get(t.key);
      const value = t.value === null ? "no value" : fmt(t.value);
      const title = `trial ${t.trial} (${t.name}, ${t.status}): ${value}, ${t.spent} epochs spent`;
      const px = x(t[xKey]);
      const mark =
        t.value !== null
          ? svgEl("circle", { class: "dot", cx: px, cy: y(t.value), r: 3, fill: "#4e79a7" })
          : svgEl("path", {
              class: "novalue-tick",
              d: `M${px},${height - m.b - 6}v6`,
            });
      mark.setAttribute("data-key", t.key);
      mark.append(svgEl("title", {}, title));
      if (run) mark.addEventListener("click", () => togglePick(run.key));
      svg.append(mark);
    }
    return svg;
  }

  // ---- SVG charts ---------------------------------------------------------------------------

  function extent(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo === hi) {
      const pad = Math.abs(lo) * 0.05 || 1;
      return [lo - pad, hi + pad];
    }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  /** A linear map from `domain` to `range`; `.ticks(n)` gives round values inside the domain. */
  function scale(domain, range) {
    const [d0, d1] = domain;
    const [r0, r1] = range;
    const f = (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
    f.range = range;
    f.ticks = (n, integers) => {
      const raw = (d1 - d0) / n;
      const power = Math.pow(10, Math.floor(Math.log10(raw)));
      const unit = raw / power;
      let step = (unit < 1.5 ? 1 : unit < 3 ? 2 : unit < 7 ? 5 : 10) * power;
      if (integers) step = Math.max(1, Math.round(step));
      const out = [];
      for (let v = Math.ceil(d0 / step) * step; v <= d1; v += step)
        out.push(Number(v.toPrecision(12)));
      return out;
    };
    return f;
  }

  function plotFrame(width, height, label) {
    return svgEl("svg", {
      class: "plot",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": label,
    });
  }

  /** Gridlines and tick labels of a numeric y axis, and its title. */
  function yAxis(svg, y, left, right, title) {
    for (const t of y.ticks(5)) {
      svg.append(
        svgEl("line", { class: "grid-line", x1: left, x2: right, y1: y(t), y2: y(t) }),
        svgEl("text", { x: left - 4, y: y(t) + 3, "text-anchor": "end" }, fmt(t)),
      );
    }
    const mid = (y.range[0] + y.range[1]) / 2;
    svg.append(
      svgEl(
        "text",
        { transform: `translate(12 ${mid}) rotate(-90)`, "text-anchor": "middle" },
        title,
      ),
    );
  }

  function lineChart(series, { width = 620, height = 300, yLabel = "" }) {
    const m = { l: 58, r: 14, t: 10, b: 34 };
    const xs = [];
    const ys = [];
    for (const s of series)
      for (const [x, v] of s.points)
        if (v !== null) {
          xs.push(x);
          ys.push(v);
        }
    const svg = plotFrame(width, height, `${yLabel} per epoch`);
    if (!ys.length)
      return build(svg, {}, [svgEl("text", { x: width / 2, y: height / 2 }, "no data")]);
    const x = scale(extent(xs), [m.l, width - m.r]);
    const y = scale(extent(ys), [height - m.b, m.t]);
    yAxis(svg, y, m.l, width - m.r, yLabel);
    for (const t of x.ticks(8, true)) {
      svg.append(svgEl("text", { x: x(t), y: height - m.b + 14, "text-anchor": "middle" }, fmt(t)));
    }
    svg.append(
      svgEl(
        "text",
        { x: (m.l + width - m.r) / 2, y: height - 4, "text-anchor": "middle" },
        "epoch",
      ),
    );
    for (const s of series) {
      let d = "";
      let pen = "M";
      for (const [px, v] of s.points) {
        if (v === null) {
          pen = "M";
          continue;
        } // a gap (NaN epoch) breaks the line
        d += `${pen}${x(px).toFixed(1)},${y(v).toFixed(1)}`;
        pen = "L";
      }
      svg.append(
        svgEl(
          "path",
          { class: "series" + (s.dashed ? " dashed" : ""), stroke: s.colour, d, "data-key": s.key },
          svgEl("title", {}, s.label),
        ),
      );
      if (s.points.length <= 40) {
        for (const [px, v] of s.points) {
          if (v === null) continue;
          svg.append(
            svgEl(
              "circle",
              { cx: x(px), cy: y(v), r: 2.3, fill: s.colour },
              svgEl("title", {}, `${s.label}, epoch ${px}: ${fmt(v)}`),
            ),
          );
        }
      }
    }
    return svg;
  }

  function isNumeric(panel) {
    return panel.scale === "linear" || panel.scale === "log";
  }

  /** Where a parameter's values sit between pixels r0 and r1: evenly spaced categories (band
   * centres), or a numeric axis, logarithmic where the searched grid's space is (`panel.scale`,
   * decided in Python). `ticks`: [pixel, label, full label] to write along it. */
  function paramAxis(panel, r0, r1) {
    const { values } = panel;
    if (!isNumeric(panel)) {
      const band = (r1 - r0) / values.length;
      const pos = (value) => r0 + band * (values.indexOf(value) + 0.5);
      const ticks = [];
      values.forEach((value, i) => {
        const label = value === null ? NOT_SET : value;
        if (i % labelEvery(values) === 0) ticks.push([pos(value), label, label]);
      });
      return { pos, band, ticks };
    }
    const log = panel.scale === "log";
    const t = log ? Math.log10 : (v) => v;
    const numbers = values.map(Number);
    const s = scale(extent(numbers.map(t)), [r0, r1]);
    const pos = (value) => s(t(Number(value)));
    let marks = [];
    if (log) {
      const lo = Math.min(...numbers);
      const hi = Math.max(...numbers);
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        for (const k of [1, 2, 5]) marks.push(Number((k * Math.pow(10, e)).toPrecision(12)));
      }
      const [a, b] = [Math.min(r0, r1), Math.max(r0, r1)];
      marks = marks.filter((v) => s(t(v)) >= a - 0.5 && s(t(v)) <= b + 0.5);
      if (marks.length > 7) marks = marks.filter((v) => Number.isInteger(Math.log10(v)));
    } else {
      marks = s.ticks(5);
    }
    return { pos, band: 0, ticks: marks.map((v) => [s(t(v)), fmt(v), fmt(v)]) };
  }

  /** A panel of the rank chart: a dot per ranked run at its parameter value (evenly spaced
   * categories), a line through the means, mean ± sample standard deviation as error bars. The
   * statistics come with the chart; runs the filters hide are drawn faint. */
  function dotChart(panel, points, grid) {
    const { param, values, groups } = panel;
    const numeric = isNumeric(panel);
    const width = numeric ? 340 : Math.min(520, Math.max(200, 60 * values.length + 70));
    const height = 200;
    const m = { l: 54, r: 14, t: 10, b: 44 };
    const axis = paramAxis(panel, m.l, width - m.r);
    const band = axis.band;
    const cx = axis.pos;
    const y = scale(extent(points.map((point) => point.rank)), [height - m.b, m.t]);
    const svg = plotFrame(width, height, `${grid.metric} by ${param}`);
    svg.dataset.scale = panel.scale || "category";
    yAxis(svg, y, m.l, width - m.r, grid.metric);
    const valueOf = (point) => (param in point.params ? point.params[param] : null);
    for (const [px, label, full] of axis.ticks) {
      svg.append(
        svgEl(
          "text",
          { x: px, y: height - m.b + 14, "text-anchor": "middle" },
          shorten(label),
          svgEl("title", {}, full),
        ),
      );
    }
    const clamp = (py) => Math.min(height - m.b, Math.max(m.t, py));
    for (const { value, mean, sd, n } of groups) {
      if (sd === null) continue;
      const label = value === null ? NOT_SET : value;
      const [x0, top, bottom] = [cx(value) + band * 0.3, clamp(y(mean + sd)), clamp(y(mean - sd))];
      svg.append(
        svgEl(
          "path",
          {
            class: "error-bar",
            d: `M${x0},${top}V${bottom}M${x0 - 4},${top}h8M${x0 - 4},${bottom}h8`,
          },
          svgEl("title", {}, `${label}: ${fmt(mean)} ± ${fmt(sd)} over ${n} runs`),
        ),
      );
    }
    svg.append(
      svgEl(
        "text",
        { x: (m.l + width - m.r) / 2, y: height - 6, "text-anchor": "middle" },
        panel.scale === "log" ? `${param} (log scale)` : param,
      ),
    );
    // sampled values each have one run: a line through them would be noise
    if (groups.length > 1 && (!numeric || groups.some((g) => g.n > 1))) {
      svg.append(
        svgEl("path", {
          class: "mean",
          d: groups.map((g, i) => `${i ? "L" : "M"}${cx(g.value)},${y(g.mean)}`).join(""),
        }),
      );
    }
    const seen = {};
    for (const point of points) {
      const run = runByKey.get(point.key);
      const value = valueOf(point);
      const nth = (seen[value] = (seen[value] || 0) + 1) - 1; // spread dots that share a value
      const classes = ["dot"];
      if (state.selected.includes(run.key)) classes.push("picked");
      if (rowByKey.get(run.key).hidden) classes.push("faint");
      const dot = svgEl(
        "circle",
        {
          class: classes.join(" "),
          cx: cx(value) + (numeric ? 0 : ((nth % 5) - 2) * 3),
          cy: y(point.rank),
          r: 4,
          fill: isBest(run) ? "#bf8700" : "#4e79a7",
          "data-key": run.key,
        },
        svgEl("title", {}, `${run.name}: ${fmt(point.rank)}`),
      );
      dot.addEventListener("click", () => togglePick(run.key));
      svg.append(dot);
    }
    return svg;
  }

  /** Light blue (t = 0, the worst run shown) to dark blue (t = 1, the best). */
  function shade(t) {
    const mix = (from, to) => Math.round(from + (to - from) * t);
    return `rgb(${mix(198, 31)},${mix(219, 78)},${mix(239, 140)})`;
  }

  /** Parallel coordinates: one axis per varied parameter, then the rank metric; a line per run. */
  function parallelChart(list, axes, grid) {
    const width = Math.max(420, 150 * (axes.length + 1));
    const height = 260;
    const m = { l: 84, r: 60, t: 32, b: 14 };
    const step = (width - m.l - m.r) / axes.length;
    const top = m.t;
    const bottom = height - m.b;
    const catY = (values, value) =>
      values.length === 1
        ? (top + bottom) / 2
        : bottom - (values.indexOf(value) / (values.length - 1)) * (bottom - top);
    const [lo, hi] = extent(list.map((run) => run.rank));
    const y = scale([lo, hi], [bottom, top]);
    const goodness = (rank) => (grid.mode === "min" ? hi - rank : rank - lo) / (hi - lo);
    const svg = plotFrame(width, height, `parameters and ${grid.metric}`);
    // the best runs last, so that they are drawn on top
    const byGoodness = list.slice().sort((a, b) => goodness(a.rank) - goodness(b.rank));
    // numeric parameters (a searched grid's) on numeric axes, low at the bottom
    const numericAxes = axes.map((panel) =>
      isNumeric(panel) ? paramAxis(panel, bottom, top) : null,
    );
    const placeY = (i, value) =>
      numericAxes[i] ? numericAxes[i].pos(value) : catY(axes[i].values, value);
    for (const run of byGoodness) {
      const points = axes.map(({ param }, i) => [
        m.l + i * step,
        placeY(i, param in run.params ? run.params[param] : null),
      ]);
      points.push([m.l + axes.length * step, y(run.rank)]);
      const colour = shade(goodness(run.rank));
      const classes = [
        "pc-line",
        isBest(run) ? "best" : "",
        state.selected.includes(run.key) ? "picked" : "",
      ];
      const line = svgEl(
        "path",
        {
          class: classes.join(" ").trim(),
          stroke: colour,
          "data-key": run.key,
          d: points
            .map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`)
            .join(""),
        },
        svgEl("title", {}, `${run.name}: ${grid.metric} ${fmt(run.rank)}`),
      );
      line.addEventListener("click", () => togglePick(run.key));
      svg.append(line);
    }
    const label = (x, yy, text, anchor) =>
      svgEl(
        "text",
        {
          x,
          y: yy,
          "text-anchor": anchor,
          "paint-order": "stroke",
          stroke: "#fff",
          "stroke-width": 3,
        },
        text,
      );
    axes.forEach(({ param, values }, i) => {
      const x = m.l + i * step;
      svg.append(
        svgEl("line", { class: "axis-line", x1: x, x2: x, y1: top, y2: bottom, stroke: "#57606a" }),
        label(x, 12, axes[i].scale === "log" ? `${param} (log)` : param, "middle"),
      );
      if (numericAxes[i]) {
        for (const [py, text] of numericAxes[i].ticks)
          svg.append(label(x - 4, py + 3, text, "end"));
        return;
      }
      for (const [j, value] of values.entries()) {
        if (j % labelEvery(values) !== 0) continue;
        const text = value === null ? NOT_SET : value;
        svg.append(
          build(label(x - 4, catY(values, value) + 3, shorten(text), "end"), {}, [
            svgEl("title", {}, text),
          ]),
        );
      }
    });
    const x = m.l + axes.length * step;
    svg.append(
      svgEl("line", { x1: x, x2: x, y1: top, y2: bottom, stroke: "#57606a" }),
      label(x, 12, grid.metric, "middle"),
    );
    for (const t of y.ticks(5)) svg.append(label(x + 4, y(t) + 3, fmt(t), "start"));
    return svg;
  }

  // ---- links inside the page: grids in the summary, parent runs ----------------------------

  function showRun(key) {
    const tr = rowByKey.get(key);
    if (!tr) return;
    if (state.grid && state.grid !== runByKey.get(key).grid) selectGrid("");
    if (tr.hidden) resetFilters();
    tr.classList.remove("flash");
    void tr.offsetWidth; // restart the highlight animation
    tr.classList.add("flash");
    tr.scrollIntoView({ block: "center" });
  }

  function followHash() {
    const hash = decodeURIComponent(location.hash.slice(1));
    if (hash.startsWith("grid=")) selectGrid(hash.slice(5));
    else if (hash.startsWith("run-")) showRun(hash.slice(4));
  }

  // ---- wiring -------------------------------------------------------------------------------

  buildControls();
  for (const th of headRow.cells) {
    if (th.dataset.col === "files" || th.dataset.col === "pick") continue;
    th.tabIndex = 0;
    th.addEventListener("click", () => sortBy(th.dataset.col));
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortBy(th.dataset.col);
      }
    });
  }
  table.tBodies[0].addEventListener("change", (event) => {
    if (event.target.classList.contains("pick"))
      togglePick(event.target.closest("tr").dataset.key, event.target.checked);
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.grid-link, a.parent-link");
    if (!link) return;
    event.preventDefault();
    if (link.classList.contains("grid-link")) selectGrid(link.dataset.grid);
    else showRun(link.dataset.key);
  });
  window.addEventListener("hashchange", followHash);
  applyColumns();
  applyFilters();
  followHash();
})();
