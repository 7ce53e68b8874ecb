// Switchyard console: a small single-page app over the /v1 admin API
// (docs/console.md). No framework and no build step: each page builds its
// static parts (forms) once and refreshes its data every few seconds. Data
// from the API only ever reaches the page as text nodes (el(), never
// innerHTML), so a topic or group name cannot inject markup.
'use strict';

(function () {
  const TOKEN_KEY = 'switchyard.admin-token';
  const REFRESH_MS = 3000;
  // MAX_TOPICS caps the Topics page's list (GET /v1/topics?limit=).
  const MAX_TOPICS = 2000;

  // ---- DOM helpers -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function table(id, headers, rows, empty) {
    if (!rows.length) return el('p', { class: 'muted', id: id, 'data-empty': '' }, empty || 'None.');
    return el('table', { id: id },
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: h.endsWith('#') ? 'num' : '' }, h.replace(/#$/, ''))))),
      el('tbody', {}, rows.map((r) => el('tr', { 'data-key': r.key || '' },
        r.cells.map((c, i) => el('td', { class: headers[i].endsWith('#') ? 'num' : '' }, c))))));
  }

  function badge(text, kind) { return el('span', { class: 'badge ' + (kind || '') }, text); }
  function stateBadge(s) {
    const good = ['up', 'alive', 'active', 'Stable', 'Leader', 'applied', 'finished', 'voter', 'true'];
    const bad = ['down', 'dead', 'failed', 'failed-over', 'aborted', 'false', 'Dead'];
    return badge(String(s), good.includes(String(s)) ? 'ok' : bad.includes(String(s)) ? 'bad' : 'warn');
  }
  function replace(container, ...nodes) { container.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false)); }
  function errorBox(err) { return el('p', { class: 'error' }, String(err.message || err)); }

  const fmt = {
    time(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—'; },
    dur(ms) {
      if (ms === undefined || ms === null) return '—';
      if (ms < 1000) return ms + ' ms';
      const s = Math.round(ms / 1000);
      return s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h';
    },
    rate(b) {
      if (!b) return b === 0 ? '0 B/s' : '—';
      const u = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
      let i = 0;
      while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
      return (i ? b.toFixed(1) : Math.round(b)) + ' ' + u[i];
    },
    limit(b) { return b ? fmt.rate(b) : 'no limit'; },
    list(a) { return a && a.length ? a.join(', ') : '—'; },
    regions(m) { return m && Object.keys(m).length ? Object.entries(m).map(([r, c]) => r + '→' + c).join(', ') : '—'; },
  };

  // ---- the API -----------------------------------------------------------

  class APIError extends Error {
    constructor(status, msg, body) { super(msg); this.status = status; this.body = body; }
  }

  // api calls the admin API with this tab's token. A 401 opens the login
  // form; every other failure is an APIError carrying the API's reason.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store', redirect: 'error',
    });
    let data = null;
    if (res.status !== 204 && (res.headers.get('Content-Type') || '').includes('json')) {
      data = await res.json().catch(() => null);
    }
    if (res.status === 401) {
      showLogin(data && data.error);
      throw new APIError(401, 'log in with a token to see this page', data);
    }
    if (!res.ok) throw new APIError(res.status, (data && data.error) || res.status + ' ' + res.statusText, data);
    return data;
  }
  const get = (p) => api('GET', p);
  const seg = encodeURIComponent;
  // settled turns a failed read into {error} so one page can show what it
  // could read and say what it could not.
  const settled = (p) => p.then((v) => ({ v }), (error) => ({ error }));

  // ---- login -------------------------------------------------------------

  function showLogin(reason) {
    document.getElementById('login').hidden = false;
    document.getElementById('login-error').textContent = reason || '';
    document.getElementById('login-token').focus();
  }
  function setupLogin() {
    document.getElementById('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = document.getElementById('login-token');
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      document.getElementById('login').hidden = true;
      updateWho();
      route();
    });
    document.getElementById('logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      updateWho();
      showLogin('');
    });
    updateWho();
  }
  function updateWho() {
    const has = !!sessionStorage.getItem(TOKEN_KEY);
    document.getElementById('whoami').textContent = has ? 'token set (this tab only)' : '';
    document.getElementById('logout').hidden = !has;
  }

  // ---- forms -------------------------------------------------------------

  function field(label, input) { return el('label', {}, label, input); }
  function input(name, attrs) { return el('input', Object.assign({ name, id: 'f-' + name }, attrs || {})); }
  function select(name, options, attrs) {
    return el('select', Object.assign({ name, id: 'f-' + name }, attrs || {}),
      options.map((o) => el('option', { value: Array.isArray(o) ? o[0] : o }, Array.isArray(o) ? o[1] : o)));
  }
  // form builds a form whose submit runs action(values); the result line
  // says what happened, and the page refreshes after a success.
  function form(id, fields, buttons, action) {
    const result = el('p', { class: 'result', id: id + '-result' });
    const f = el('form', { class: 'inline', id }, fields, buttons, result);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const values = Object.fromEntries(new FormData(f).entries());
      const submitter = ev.submitter ? ev.submitter.value : '';
      result.className = 'result';
      result.textContent = '…';
      try {
        const msg = await action(values, submitter, result);
        result.className = 'result notice';
        if (typeof msg === 'string') result.textContent = msg;
        refreshNow();
      } catch (err) {
        result.className = 'result error';
        result.textContent = err.message;
      }
    });
    return f;
  }
  function parseList(s) { return (s || '').split(',').map((x) => x.trim()).filter(Boolean); }
  function parseRegions(s) {
    const out = {};
    for (const part of parseList(s)) {
      const [r, c] = part.split('=').map((x) => (x || '').trim());
      if (!r || !c) throw new Error('regions: write REGION=CLUSTER pairs separated by commas, e.g. dc1=east, dc2=west');
      out[r] = c;
    }
    return out;
  }
  function parseCount(s, what) {
    if (s === undefined || s === '') return 0;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0) throw new Error(what + ' must be a whole number of bytes per second (0 = no limit)');
    return n;
  }
  async function clusterOptions(sel) {
    try {
      const d = await get('/v1/clusters');
      const cur = sel.value;
      replace(sel, d.clusters.map((c) => el('option', { value: c.name }, c.name)));
      if (cur) sel.value = cur;
    } catch (e) { /* the page shows the error */ }
  }

  // ---- pages -------------------------------------------------------------

  const pages = {};

  pages.overview = {
    title: 'Overview',
    build(root) {
      this.box = el('div');
      root.append(el('h1', {}, 'Fleet overview'), this.box);
    },
    async refresh() {
      const [st, peers, health, failover, seen] = await Promise.all([
        get('/v1/status'), get('/v1/peers'), settled(get('/v1/health')), settled(get('/v1/failover')), settled(scrapeTraffic())]);
      const live = peers.peers.filter((p) => p.live).length;
      const hv = health.v || [];
      const up = hv.filter((h) => h.state === 'up').length;
      const r = st.raft || {};
      replace(this.box,
        el('div', { class: 'tiles' },
          tile('this peer', st.node.name, 'tile-peer'),
          tile('Raft leader', st.leader ? st.leader.name : 'none', 'tile-leader'),
          tile('Raft state / term', (r.state || '?') + ' / ' + (r.term ?? '?'), 'tile-raft'),
          tile('peers live', live + ' / ' + peers.peers.length, 'tile-peers'),
          tile('clusters up', health.error ? '?' : up + ' / ' + hv.length, 'tile-clusters'),
          tile('state index', st.state_index, 'tile-index')),
        el('section', { class: 'card' }, el('h2', {}, 'Raft'),
          el('dl', { class: 'kv', id: 'raft-kv' }, Object.entries(r).map(([k, v]) => [el('dt', {}, k), el('dd', { 'data-key': k }, String(v))])),
          el('p', { class: 'muted' }, 'Version ', st.node.version || '?', ', region ', st.node.region || '—')),
        el('section', { class: 'card' }, el('h2', {}, 'Peers'),
          table('peers-table', ['name', 'id#', 'region', 'kafka', 'admin', 'version', 'gossip', 'raft', 'live'],
            peers.peers.map((p) => ({
              key: p.name,
              cells: [p.name + (st.leader && st.leader.name === p.name ? ' ★' : ''), p.id, p.region || '—', p.kafka_addr, p.admin_addr || '—',
                p.version || '—', stateBadge(p.gossip), p.raft, stateBadge(p.live)],
            })))),
        el('section', { class: 'card' }, el('h2', {}, 'Backend clusters'),
          health.error ? errorBox(health.error) :
            table('health-table', ['cluster', 'state', 'peer verdicts', 'since', 'up for'],
              hv.map((h) => ({
                key: h.cluster,
                cells: [h.cluster, stateBadge(h.state), Object.entries(h.peers || {}).map(([p, v]) => p + ': ' + v).join(', ') || '—',
                  fmt.time(h.since), fmt.dur(h.up_for_ms)],
              })), 'No backend cluster.')),
        el('section', { class: 'card' }, el('h2', {}, 'Traffic through this peer'),
          seen.error ? errorBox(seen.error) : [
            table('traffic-clusters', ['cluster', 'sent to brokers', 'received from brokers'],
              trafficNames(seen.v, 'c').map((c) => ({ key: c, cells: [c, trafficRate('c', c, 'out'), trafficRate('c', c, 'in')] })),
              'No backend traffic through this peer yet.'),
            el('h2', {}, 'Busiest topics'),
            table('traffic-topics', ['topic', 'produce', 'fetch'],
              busiest(trafficNames(seen.v, 't')).map((t) => ({ key: t, cells: [t, trafficRate('t', t, 'produce'), trafficRate('t', t, 'fetch')] })),
              'No topic traffic through this peer yet.'),
            el('p', { class: 'muted' }, 'Rates between the last two refreshes, from this peer\'s /metrics; every peer counts its own clients.')]),
        failover.v && failover.v.some((f) => f.state !== 'active') ?
          el('section', { class: 'card' }, el('h2', {}, 'Failover in effect'),
            table('overview-failover', ['cluster', 'state', 'since', 'routes moved#', 'manual'],
              failover.v.filter((f) => f.state !== 'active').map((f) => ({
                key: f.cluster, cells: [f.cluster, stateBadge(f.state), fmt.time(f.since), f.routes_moved, String(!!f.manual)],
              })))) : null);
    },
  };
  // busiest orders topics by their produce + fetch rate, the top 10.
  function busiest(topics) {
    const r = (t) => (traffic.rates['t\u0000' + t + '\u0000produce'] || 0) + (traffic.rates['t\u0000' + t + '\u0000fetch'] || 0);
    return topics.sort((a, b) => r(b) - r(a) || a.localeCompare(b)).slice(0, 10);
  }
  function tile(label, value, id) {
    return el('div', { class: 'tile', id }, el('div', { class: 'v' }, String(value)), el('div', { class: 'l' }, label));
  }

  pages.clusters = {
    title: 'Clusters',
    build(root) {
      this.box = el('div');
      root.append(el('h1', {}, 'Backend clusters'), this.box);
    },
    async refresh() {
      const [cl, health, failover] = await Promise.all([get('/v1/clusters'), settled(get('/v1/health')), settled(get('/v1/failover'))]);
      const hs = Object.fromEntries((health.v || []).map((h) => [h.cluster, h]));
      const fs = Object.fromEntries((failover.v || []).map((f) => [f.cluster, f]));
      replace(this.box,
        health.error ? el('p', { class: 'error' }, 'health: ' + health.error.message) : null,
        table('clusters-table', ['name', 'bootstrap', 'region', 'tls', 'sasl', 'health', 'failover', 'down after', 'up after'],
          cl.clusters.map((c) => ({
            key: c.name,
            cells: [c.name, c.bootstrap.join(', '), c.region || '—', c.tls ? 'yes' : 'no', c.sasl ? c.sasl.mechanism : '—',
              hs[c.name] ? stateBadge(hs[c.name].state) : '—', fs[c.name] ? stateBadge(fs[c.name].state) : '—',
              fmt.dur(c.down_after_ms || 10000), fmt.dur(c.up_after_ms || 60000)],
          })), 'No cluster is defined.'));
    },
  };

  pages.routes = {
    title: 'Routes',
    build(root) {
      this.box = el('div');
      const cluster = select('cluster', []);
      clusterOptions(cluster);
      const f = form('route-form', [
        field('kind', select('kind', [['topic', 'topic (exact)'], ['prefix', 'topic prefix'], ['group', 'group prefix'], ['default', 'default cluster']])),
        field('topic, prefix or group prefix', input('name', { placeholder: 'orders' })),
        field('cluster', cluster),
        field('regions (REGION=CLUSTER, …)', input('regions', { placeholder: 'dc1=east, dc2=west' })),
        field('fallback (clusters, in order)', input('fallback', { placeholder: 'west' })),
        field('resume', select('resume', [['', 'default (committed)'], 'committed', 'timestamp', 'latest', 'earliest'])),
        field('failback', select('failback', [['', 'default (auto)'], 'auto', 'manual'])),
      ], el('button', { type: 'submit', id: 'route-submit' }, 'Save route'), async (v) => {
        const body = { cluster: v.cluster };
        const regions = parseRegions(v.regions);
        if (Object.keys(regions).length) body.regions = regions;
        const fallback = parseList(v.fallback);
        if (fallback.length) body.fallback = fallback;
        if (v.resume) body.resume = v.resume;
        if (v.failback) body.failback = v.failback;
        if (v.kind !== 'default' && !v.name) throw new Error('name the topic or prefix');
        const path = { topic: '/v1/routes/', prefix: '/v1/prefix-routes/', group: '/v1/group-routes/', default: '/v1/default-cluster' }[v.kind] +
          (v.kind === 'default' ? '' : seg(v.name));
        await api('PUT', path, body);
        return 'Saved ' + (v.kind === 'default' ? 'the default cluster' : v.kind + ' ' + v.name) + ' → ' + v.cluster;
      });
      root.append(el('h1', {}, 'Routes'), el('section', { class: 'card' }, el('h2', {}, 'Add or replace a route'), f), this.box);
    },
    async refresh() {
      const rt = await get('/v1/routes');
      const del = (path, what) => el('button', {
        type: 'button', class: 'danger', onclick: async (ev) => {
          if (!window.confirm('Delete ' + what + '?')) return;
          try { await api('DELETE', path); refreshNow(); } catch (err) { ev.target.after(errorBox(err)); }
        },
      }, 'delete');
      const targets = (r) => [fmt.regions(r.regions), fmt.list(r.fallback), r.resume || '—', r.failback || '—'];
      const d = rt.default || {};
      replace(this.box,
        el('section', { class: 'card' }, el('h2', {}, 'Default cluster'),
          el('p', { id: 'default-cluster' }, rt.default_cluster || '(none: unrouted topics are refused)'),
          rt.default_cluster ? el('p', { class: 'muted' }, 'regions ', fmt.regions(d.regions), '; fallback ', fmt.list(d.fallback)) : null),
        el('section', { class: 'card' }, el('h2', {}, 'Topic routes'),
          table('routes-topics', ['topic', 'cluster', 'regions', 'fallback', 'resume', 'failback', ''],
            rt.topics.map((r) => ({ key: r.topic, cells: [r.topic, r.cluster, ...targets(r), del('/v1/routes/' + seg(r.topic), 'the route of ' + r.topic)] })))),
        el('section', { class: 'card' }, el('h2', {}, 'Topic prefix routes'),
          table('routes-prefixes', ['prefix', 'cluster', 'regions', 'fallback', 'resume', 'failback', ''],
            rt.prefixes.map((r) => ({ key: r.prefix, cells: [r.prefix, r.cluster, ...targets(r), del('/v1/prefix-routes/' + seg(r.prefix), 'the prefix rule ' + r.prefix)] })))),
        el('section', { class: 'card' }, el('h2', {}, 'Group prefix routes'),
          table('routes-groups', ['prefix', 'cluster', 'regions', 'fallback', 'resume', 'failback', ''],
            rt.group_prefixes.map((r) => ({ key: r.prefix, cells: [r.prefix, r.cluster, ...targets(r), del('/v1/group-routes/' + seg(r.prefix), 'the group rule ' + r.prefix)] })))));
    },
  };

  pages.quotas = {
    title: 'Quotas',
    build(root) {
      this.box = el('div');
      const f = form('quota-form', [
        field('kind', select('kind', [['topic', 'topic (exact)'], ['prefix', 'topic prefix']])),
        field('topic or prefix', input('name', { placeholder: 'orders', required: true })),
        field('produce bytes/s (0 = no limit)', input('produce', { type: 'number', min: '0', value: '0' })),
        field('fetch bytes/s (0 = no limit)', input('fetch', { type: 'number', min: '0', value: '0' })),
      ], el('button', { type: 'submit', id: 'quota-submit' }, 'Save quota'), async (v) => {
        const body = { produce_bytes_per_sec: parseCount(v.produce, 'produce'), fetch_bytes_per_sec: parseCount(v.fetch, 'fetch') };
        await api('PUT', (v.kind === 'prefix' ? '/v1/prefix-quotas/' : '/v1/quotas/') + seg(v.name), body);
        return 'Saved the quota of ' + v.name;
      });
      root.append(el('h1', {}, 'Quotas'),
        el('section', { class: 'card' }, el('h2', {}, 'Add or replace a quota'), f,
          el('p', { class: 'muted' }, 'Each rule is the fleet-wide rate; the leader leases shares of it to the peers that serve the topic.')),
        this.box);
    },
    async refresh() {
      const q = await get('/v1/quotas');
      // Live rates and shares come per exact topic (GET /v1/quotas/{topic});
      // a prefix rule has no one topic to measure.
      const live = await Promise.all(q.quotas.map((r) => (r.prefix ? Promise.resolve(null) :
        get('/v1/quotas/' + seg(r.topic)).catch(() => null))));
      const del = (r) => el('button', {
        type: 'button', class: 'danger', onclick: async (ev) => {
          if (!window.confirm('Delete the quota of ' + r.topic + '?')) return;
          try { await api('DELETE', (r.prefix ? '/v1/prefix-quotas/' : '/v1/quotas/') + seg(r.topic)); refreshNow(); } catch (err) { ev.target.after(errorBox(err)); }
        },
      }, 'delete');
      replace(this.box, el('section', { class: 'card' }, el('h2', {}, 'Rules'),
        table('quotas-table', ['rule', 'kind', 'produce limit', 'fetch limit', 'produce rate', 'fetch rate', 'peer shares', ''],
          q.quotas.map((r, i) => {
            const l = live[i];
            const shares = l && l.shares ? l.shares.map((s) => s.peer + ' ' + s.direction + ' ' + fmt.rate(s.share_bytes_per_sec) + ' (' + s.mode + (s.saturated ? ', saturated' : '') + ')').join('; ') : '—';
            return {
              key: (r.prefix ? 'prefix:' : 'topic:') + r.topic,
              cells: [r.topic, r.prefix ? 'prefix' : 'topic', fmt.limit(r.produce_bytes_per_sec), fmt.limit(r.fetch_bytes_per_sec),
                l ? fmt.rate(l.produce_rate_bytes_per_sec) : '—', l ? fmt.rate(l.fetch_rate_bytes_per_sec) : '—', shares || '—', del(r)],
            };
          }), 'No quota.')));
    },
  };

  // Traffic comes from this peer's own /metrics (open, like /healthz): the
  // per-topic and per-cluster byte counters, turned into rates between two
  // refreshes. Keys: "t\0TOPIC\0DIRECTION" and "c\0CLUSTER\0DIRECTION".
  const traffic = { last: null, at: 0, rates: {} };
  const counters = { switchyard_kafka_topic_bytes_total: ['t', 'topic'], switchyard_kafka_cluster_bytes_total: ['c', 'cluster'] };
  async function scrapeTraffic() {
    const res = await fetch('/metrics', { credentials: 'omit', cache: 'no-store' });
    if (!res.ok) throw new Error('/metrics answered ' + res.status);
    const text = await res.text();
    const now = Date.now();
    const cur = {};
    const re = /^(switchyard_kafka_(?:topic|cluster)_bytes_total)\{([^}]*)\} ([0-9.eE+-]+)$/gm;
    let m;
    while ((m = re.exec(text)) !== null) {
      const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
        .map((x) => [x[1], x[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c))]));
      const [kind, label] = counters[m[1]];
      const k = kind + '\u0000' + labels[label] + '\u0000' + labels.direction;
      cur[k] = (cur[k] || 0) + Number(m[3]);
    }
    const rates = {};
    if (traffic.last) {
      const dt = (now - traffic.at) / 1000;
      for (const [k, v] of Object.entries(cur)) rates[k] = dt > 0 ? Math.max(0, (v - (traffic.last[k] || 0)) / dt) : 0;
    }
    traffic.last = cur; traffic.at = now; traffic.rates = rates;
    return cur;
  }
  // trafficRate formats one rate, or "…" until two scrapes gave one.
  function trafficRate(kind, name, dir) {
    const k = kind + '\u0000' + name + '\u0000' + dir;
    return k in traffic.rates ? fmt.rate(traffic.rates[k]) : '…';
  }
  // trafficNames lists the topics or clusters a scrape saw.
  function trafficNames(seen, kind) {
    const out = new Set();
    for (const k of Object.keys(seen)) {
      const [kk, name] = k.split('\u0000');
      if (kk === kind && name !== '(other)') out.add(name);
    }
    return [...out].sort();
  }

  pages.topics = {
    title: 'Topics',
    build(root) {
      this.box = el('div');
      const f = form('topic-lookup', [
        field('topic', input('topic', { placeholder: 'orders', required: true })),
        field('client region (optional)', input('region', { placeholder: 'dc1' })),
      ], el('button', { type: 'submit' }, 'Resolve'), async (v, _s, result) => {
        const r = await get('/v1/routes/' + seg(v.topic) + (v.region ? '?region=' + seg(v.region) : ''));
        result.textContent = r.topic + (r.region ? ' (region ' + r.region + ')' : '') + ' → ' + r.cluster + ' by ' + r.match + (r.rule ? ' rule ' + r.rule : '');
      });
      root.append(el('h1', {}, 'Topics'),
        el('section', { class: 'card' }, el('h2', {}, 'Where does a topic go?'), f), this.box);
    },
    // refresh lists every topic from GET /v1/topics (this peer's metadata
    // view: cluster, partitions, the clusters holding it, a live
    // migration). A peer that does not serve it yet (404: an older
    // version) gets the earlier list: the topics with a route, a quota, a
    // migration or traffic through this peer, resolved one by one.
    async refresh() {
      const [all, mig] = await Promise.all([
        settled(get('/v1/topics?limit=' + MAX_TOPICS)), settled(get('/v1/migrations')), scrapeTraffic().catch(() => ({}))]);
      if (all.error && all.error.status === 404) return this.refreshKnown(mig);
      if (all.error) throw all.error;
      const migs = Object.fromEntries(((mig.v && mig.v.migrations) || []).map((m) => [m.topic, m]));
      const topics = all.v.topics;
      replace(this.box, el('section', { class: 'card', 'data-source': 'topics' }, el('h2', {}, 'All topics'),
        el('p', { class: 'muted' }, 'Every topic this peer\'s metadata holds (internal "__" topics left out): where its route sends it now, its partitions there, the clusters that hold it. Rates are this peer\'s, from its /metrics.'),
        all.v.truncated ? el('p', { class: 'error', id: 'topics-truncated' }, 'Only the first ' + topics.length + ' topics are shown.') : null,
        table('topics-table', ['topic', 'cluster', 'partitions#', 'present on', 'migration', 'produce (this peer)', 'fetch (this peer)'],
          topics.map((t) => ({
            key: t.name,
            cells: [t.name, t.cluster, t.partitions || '—', fmt.list(t.present_on),
              t.migrating ? (migs[t.name] ? migs[t.name].state + ' → ' + migs[t.name].to : 'migrating') : '—',
              trafficRate('t', t.name, 'produce'), trafficRate('t', t.name, 'fetch')],
          })), 'No topic yet.')));
    },
    async refreshKnown(mig) {
      const [rt, q] = await Promise.all([get('/v1/routes'), get('/v1/quotas')]);
      const seen = traffic.last || {};
      const names = new Set(rt.topics.map((r) => r.topic));
      q.quotas.filter((x) => !x.prefix).forEach((x) => names.add(x.topic));
      const migs = Object.fromEntries(((mig.v && mig.v.migrations) || []).map((m) => [m.topic, m]));
      Object.keys(migs).forEach((t) => names.add(t));
      trafficNames(seen, 't').forEach((t) => names.add(t));
      const list = [...names].sort().slice(0, 500);
      const res = await Promise.all(list.map((t) => get('/v1/routes/' + seg(t)).catch(() => null)));
      replace(this.box, el('section', { class: 'card', 'data-source': 'known' }, el('h2', {}, 'Known topics'),
        el('p', { class: 'muted' }, 'This peer does not list all topics (no GET /v1/topics): these are the topics with a route, a quota, a migration or traffic through this peer. Rates are this peer\'s, from its /metrics.'),
        table('topics-table', ['topic', 'cluster', 'match', 'migration', 'produce (this peer)', 'fetch (this peer)'],
          list.map((t, i) => ({
            key: t,
            cells: [t, res[i] ? res[i].cluster : '(unrouted)', res[i] ? res[i].match + (res[i].rule && res[i].match === 'prefix' ? ' ' + res[i].rule : '') : '—',
              migs[t] ? migs[t].state + ' → ' + migs[t].to : '—', trafficRate('t', t, 'produce'), trafficRate('t', t, 'fetch')],
          })), 'No topic is routed, limited or migrated yet.')));
    },
  };

  pages.groups = {
    title: 'Consumer groups',
    build(root, arg) {
      this.group = arg;
      this.box = el('div');
      root.append(el('h1', {}, arg ? 'Consumer group ' + arg : 'Consumer groups'), this.box);
    },
    async refresh() {
      if (this.group) return this.detail(this.group);
      const d = await get('/v1/groups');
      replace(this.box,
        d.errors && d.errors.length ? el('p', { class: 'error' }, 'Some brokers did not answer: ' + d.errors.join('; ')) : null,
        table('groups-table', ['group', 'state', 'protocol type', 'type'],
          d.groups.map((g) => ({ key: g.group, cells: [el('a', { href: '#groups/' + seg(g.group) }, g.group), stateBadge(g.state), g.protocol_type || '—', g.type || '—'] })),
          'No consumer group.'));
    },
    async detail(name) {
      const g = await get('/v1/groups/' + seg(name));
      const total = g.topics.reduce((a, t) => a + (t.lag || 0), 0);
      replace(this.box,
        el('p', {}, el('a', { href: '#groups' }, '← all groups')),
        el('div', { class: 'tiles' }, tile('state', g.state, 'tile-state'), tile('members', g.members.length, 'tile-members'), tile('total lag', total, 'tile-lag'),
          tile('protocol', (g.type || '?') + ' / ' + (g.protocol || '—'), 'tile-protocol')),
        g.offsets_error ? el('p', { class: 'error' }, g.offsets_error) : null,
        el('section', { class: 'card' }, el('h2', {}, 'Members'),
          table('members-table', ['member', 'instance', 'client', 'host', 'assignment'],
            g.members.map((m) => ({ key: m.member_id, cells: [m.member_id, m.instance_id || '—', m.client_id, m.client_host,
              (m.assignment || []).map((a) => a.topic + ' [' + a.partitions.join(', ') + ']').join('; ') || '—'] })), 'No member.')),
        el('section', { class: 'card' }, el('h2', {}, 'Lag'),
          table('lag-table', ['topic', 'partition#', 'committed#', 'log end#', 'lag#'],
            g.topics.flatMap((t) => t.partitions.map((p) => ({
              key: t.topic + '/' + p.partition,
              cells: [t.topic, p.partition, p.committed < 0 ? '—' : p.committed, p.log_end_offset < 0 ? '—' : p.log_end_offset, p.lag === null ? '—' : p.lag],
            }))), 'No committed offset.')),
        g.offset_reset ? el('section', { class: 'card' }, el('h2', {}, 'Latest offset reset'), resetSummary(g.offset_reset)) : null);
    },
  };

  function resetSummary(j) {
    return el('div', { id: 'reset-job' },
      el('p', {}, stateBadge(j.state), ' to ', j.to.kind, j.to.value !== undefined ? ' ' + j.to.value : '', ' on ', fmt.list(j.topics),
        '; created ', fmt.time(j.created), j.ended ? ', ended ' + fmt.time(j.ended) : ''),
      j.error ? el('p', { class: 'error' }, j.error) : null,
      targetsTable('reset-targets', j.targets || []));
  }
  function targetsTable(id, targets) {
    return table(id, ['topic', 'partition#', 'old#', 'new#'],
      targets.map((t) => ({ key: t.topic + '/' + t.partition, cells: [t.topic, t.partition, t.old, t.new] })), 'No partition to move.');
  }

  pages.jobs = {
    title: 'Jobs',
    build(root) {
      this.migBox = el('div');
      this.failBox = el('div');
      this.resetBox = el('div', { id: 'reset-progress' });
      const to = select('to', [], { id: 'f-mig-to' });
      clusterOptions(to);
      const migForm = form('migration-form', [
        field('topic', input('topic', { required: true, id: 'f-mig-topic' })), field('to cluster', to),
      ], el('button', { type: 'submit' }, 'Start migration'), async (v) => {
        const m = await api('POST', '/v1/migrations', { topic: v.topic, to: v.to });
        return 'Migration of ' + m.topic + ' started (' + m.state + ', ' + m.phase + '); progress below.';
      });
      const preview = el('div', { id: 'reset-preview' });
      const resetForm = form('reset-form', [
        field('group', input('group', { required: true })),
        field('topics (comma-separated)', input('topics', { required: true })),
        field('to', select('to', ['earliest', 'latest', 'timestamp', 'offset', 'shift'])),
        field('value (timestamp ms, offset, or shift)', input('value', { type: 'number' })),
      ], [el('button', { type: 'submit', value: 'preview', class: 'secondary' }, 'Preview (dry run)'),
        el('button', { type: 'submit', value: 'apply', id: 'reset-apply', disabled: true }, 'Apply reset')], async (v, which) => {
        const body = { topics: parseList(v.topics) };
        if (v.to === 'earliest' || v.to === 'latest') body.to = v.to;
        else {
          if (v.value === '') throw new Error('give the ' + v.to + ' value');
          body.to = { [v.to]: Number(v.value) };
        }
        const key = JSON.stringify([v.group, body]);
        if (which !== 'apply') {
          body.dry_run = true;
          const d = await api('POST', '/v1/groups/' + seg(v.group) + '/offset-resets', body);
          replace(preview, el('h2', {}, 'Dry run: what the reset would commit'), targetsTable('preview-table', d.targets || []));
          this.previewed = key;
          document.getElementById('reset-apply').disabled = false;
          return 'Preview ready; nothing changed. Apply to run it while the consumers keep running.';
        }
        if (this.previewed !== key) throw new Error('preview this exact reset first (the form changed since the preview)');
        if (!window.confirm('Reset the offsets of group ' + v.group + '?')) return 'Cancelled.';
        await api('POST', '/v1/groups/' + seg(v.group) + '/offset-resets', body);
        this.watchGroup = v.group;
        document.getElementById('reset-apply').disabled = true;
        this.previewed = null;
        return 'Reset of ' + v.group + ' started; progress below.';
      });
      root.append(el('h1', {}, 'Operator jobs'),
        el('section', { class: 'card' }, el('h2', {}, 'Migrations'), migForm, this.migBox),
        el('section', { class: 'card' }, el('h2', {}, 'Offset reset'), resetForm, preview, this.resetBox),
        el('section', { class: 'card' }, el('h2', {}, 'Failover'), this.failBox));
    },
    async refresh() {
      const [mig, fo, health] = await Promise.all([get('/v1/migrations'), get('/v1/failover'), settled(get('/v1/health'))]);
      const act = (label, method, path, question, cls) => el('button', {
        type: 'button', class: cls || 'secondary', onclick: async (ev) => {
          if (!window.confirm(question)) return;
          try { await api(method, path); refreshNow(); } catch (err) { ev.target.after(errorBox(err)); }
        },
      }, label);
      replace(this.migBox, table('migrations-table', ['topic', 'from', 'to', 'state', 'phase', 'partitions#', 'groups behind', 'started', 'switched', 'ended', 'error', ''],
        mig.migrations.map((m) => ({
          key: m.topic,
          cells: [m.topic, m.from, m.to, stateBadge(m.state), m.phase, m.partition_count, fmt.list(m.groups_behind), fmt.time(m.started),
            fmt.time(m.switched), fmt.time(m.ended), m.error || '',
            m.state === 'running' ? act('abort', 'DELETE', '/v1/migrations/' + seg(m.topic), 'Abort the migration of ' + m.topic + '?', 'danger') :
              m.state === 'switched' ? act('finish', 'POST', '/v1/migrations/' + seg(m.topic) + '/finish', 'Retire the source segment of ' + m.topic + '?') : ''],
        })), 'No migration yet.'));
      const hs = Object.fromEntries((health.v || []).map((h) => [h.cluster, h.state]));
      replace(this.failBox, table('failover-table', ['cluster', 'health', 'state', 'since', 'routes moved#', 'manual', ''],
        fo.map((f) => ({
          key: f.cluster,
          cells: [f.cluster, hs[f.cluster] ? stateBadge(hs[f.cluster]) : '—', stateBadge(f.state), fmt.time(f.since), f.routes_moved ?? 0, String(!!f.manual),
            f.state === 'active' ? act('fail over', 'POST', '/v1/failover/' + seg(f.cluster), 'Move every route of ' + f.cluster + ' to its fallback now?', 'danger') :
              act('fail back', 'POST', '/v1/failback/' + seg(f.cluster), 'Move the routes back to ' + f.cluster + ' now?')],
        })), 'No cluster.'));
      if (this.watchGroup) {
        const j = await get('/v1/groups/' + seg(this.watchGroup) + '/offset-resets').catch((e) => ({ error: e }));
        replace(this.resetBox, j.error ? errorBox(j.error) : [el('h2', {}, 'Reset of ' + this.watchGroup), resetSummary(j)]);
      }
    },
  };

  // action is a button that asks question, then runs fn and refreshes;
  // a refusal is shown next to it with the API's reason.
  function action(label, question, fn, cls) {
    return el('button', {
      type: 'button', class: cls || 'secondary', onclick: async (ev) => {
        if (question && !window.confirm(question)) return;
        try { await fn(); refreshNow(); } catch (err) { ev.target.after(errorBox(err)); }
      },
    }, label);
  }

  // Users: SASL credentials the peers check (docs/security.md). A password
  // goes from the form straight into the PUT body (JSON, never a URL) and
  // the field is cleared at once; the API answers with mechanisms and
  // iterations only, so nothing on the page can show it again.
  pages.users = {
    title: 'Users',
    build(root) {
      this.box = el('div');
      const f = form('user-form', [
        field('user name', input('name', { id: 'f-user-name', required: true, autocomplete: 'off' })),
        field('mechanism', select('mechanism', ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'], { id: 'f-user-mechanism' })),
        field('password', input('password', { id: 'f-user-password', type: 'password', required: true, autocomplete: 'new-password' })),
        field('iterations (empty: 8192)', input('iterations', { id: 'f-user-iterations', type: 'number', min: '4096' })),
      ], el('button', { type: 'submit', id: 'user-submit' }, 'Save credential'), async (v) => {
        const pw = document.getElementById('f-user-password');
        pw.value = '';
        const body = { mechanism: v.mechanism, password: v.password };
        if (v.iterations) body.iterations = Number(v.iterations);
        const u = await api('PUT', '/v1/users/' + seg(v.name), body);
        return 'Saved the ' + v.mechanism + ' credential of ' + u.name + '.';
      });
      root.append(el('h1', {}, 'Users'),
        el('section', { class: 'card' }, el('h2', {}, 'Add a user or replace a credential'), f,
          el('p', { class: 'muted' }, 'The password is salted on the peer that receives it; only the derived SCRAM keys are replicated, and no page or answer shows it again. Needs the admin role.')),
        this.box);
    },
    async refresh() {
      const d = await get('/v1/users');
      replace(this.box, el('section', { class: 'card' }, el('h2', {}, 'Users'),
        table('users-table', ['user', 'mechanisms', ''],
          d.users.map((u) => ({
            key: u.name,
            cells: [u.name, u.mechanisms.map((m) => m.mechanism + ' (' + m.iterations + ' iterations)').join(', '),
              [u.mechanisms.length > 1 ? u.mechanisms.map((m) => action('delete ' + m.mechanism, 'Delete the ' + m.mechanism + ' credential of ' + u.name + '?',
                () => api('DELETE', '/v1/users/' + seg(u.name) + '?mechanism=' + seg(m.mechanism)), 'danger')) : null,
              action('delete user', 'Delete user ' + u.name + ' and all its credentials?', () => api('DELETE', '/v1/users/' + seg(u.name)), 'danger')]],
          })), 'No user.')));
    },
  };

  // ACLs: the authorization rules the peers enforce (docs/security.md).
  const aclOps = {
    topic: ['all', 'read', 'write', 'create', 'describe', 'delete', 'alter', 'describe_configs', 'alter_configs'],
    group: ['all', 'read', 'describe', 'delete'],
    cluster: ['all', 'create', 'cluster_action', 'describe_configs', 'alter_configs', 'idempotent_write', 'alter', 'describe'],
    transactional_id: ['all', 'describe', 'write'],
  };
  function aclKey(a) { return [a.principal, a.host, a.resource_type, a.pattern, a.resource_name, a.operation, a.permission].join('|'); }
  pages.acls = {
    title: 'ACLs',
    build(root) {
      this.box = el('div');
      const ops = select('operation', aclOps.topic, { id: 'f-acl-operation' });
      const type = select('resource_type', Object.keys(aclOps), {
        id: 'f-acl-type',
        onchange: (ev) => replace(ops, aclOps[ev.target.value].map((o) => el('option', { value: o }, o))),
      });
      const f = form('acl-form', [
        field('principal', input('principal', { id: 'f-acl-principal', placeholder: 'User:alice', required: true })),
        field('host', input('host', { id: 'f-acl-host', value: '*' })),
        field('resource type', type),
        field('pattern', select('pattern', ['literal', 'prefixed'], { id: 'f-acl-pattern' })),
        field('resource name', input('resource_name', { id: 'f-acl-resource', placeholder: 'orders', required: true })),
        field('operation', ops),
        field('permission', select('permission', ['allow', 'deny'], { id: 'f-acl-permission' })),
      ], el('button', { type: 'submit', id: 'acl-submit' }, 'Add rule'), async (v) => {
        await api('POST', '/v1/acls', {
          principal: v.principal, host: v.host || '*', resource_type: v.resource_type, pattern: v.pattern,
          resource_name: v.resource_name, operation: v.operation, permission: v.permission,
        });
        return 'Added: ' + v.permission + ' ' + v.principal + ' ' + v.operation + ' on ' + v.resource_type + ' ' + v.resource_name + '.';
      });
      root.append(el('h1', {}, 'ACLs'),
        el('section', { class: 'card' }, el('h2', {}, 'Add a rule'), f,
          el('p', { class: 'muted' }, 'Kafka\'s semantics: rules apply once the Kafka listener authenticates; a deny rule wins over every allow. Needs the admin role.')),
        this.box);
    },
    async refresh() {
      const acls = await get('/v1/acls');
      // Delete sends the rule's exact fields as the filter, so it deletes
      // that rule and nothing else.
      const exact = (a) => '/v1/acls?' + new URLSearchParams({
        principal: a.principal, host: a.host, resource_type: a.resource_type, resource_name: a.resource_name,
        pattern: a.pattern, operation: a.operation, permission: a.permission,
      });
      replace(this.box, el('section', { class: 'card' }, el('h2', {}, 'Rules'),
        table('acls-table', ['principal', 'host', 'resource', 'pattern', 'name', 'operation', 'permission', ''],
          acls.map((a) => ({
            key: aclKey(a),
            cells: [a.principal, a.host, a.resource_type, a.pattern, a.resource_name, a.operation, badge(a.permission, a.permission === 'allow' ? 'ok' : 'bad'),
              action('delete', 'Delete the rule ' + a.permission + ' ' + a.principal + ' ' + a.operation + ' on ' + a.resource_type + ' ' + a.resource_name + '?',
                () => api('DELETE', exact(a)), 'danger')],
          })), 'No rule. On a listener that authenticates, a resource no rule names is denied (to all but super users) unless the peers run with --kafka-allow-if-no-acl (docs/security.md).')));
    },
  };

  // Regions: client networks by region, the peers and clusters of each
  // region, and each cluster's failover state with the operator's
  // override (fail over, fail back).
  pages.regions = {
    title: 'Regions',
    build(root) {
      this.box = el('div');
      const f = form('region-form', [
        field('region', input('name', { id: 'f-region-name', placeholder: 'dc1', required: true })),
        field('client networks (CIDR, …)', input('networks', { id: 'f-region-networks', placeholder: '10.1.0.0/16, 10.2.0.0/16' })),
        field('fallback regions (in order)', input('fallback', { id: 'f-region-fallback', placeholder: 'dc2' })),
      ], el('button', { type: 'submit', id: 'region-submit' }, 'Save region'), async (v) => {
        const r = await api('PUT', '/v1/regions/' + seg(v.name), { networks: parseList(v.networks), fallback: parseList(v.fallback) });
        return 'Saved region ' + r.name + '.';
      });
      root.append(el('h1', {}, 'Regions'),
        el('section', { class: 'card' }, el('h2', {}, 'Add or replace a region'), f,
          el('p', { class: 'muted' }, 'A client is in the region whose network holds its address (the longest match), else in its peer\'s region; it is shown its region\'s peers and routed by its region\'s route targets (docs/regions.md). Needs the admin role.')),
        this.box);
    },
    async refresh() {
      const [st, regions, peers, cl, fo, health] = await Promise.all([get('/v1/status'), get('/v1/regions'), get('/v1/peers'),
        get('/v1/clusters'), get('/v1/failover'), settled(get('/v1/health'))]);
      const peersIn = {};
      const clustersIn = {};
      peers.peers.forEach((p) => { (peersIn[p.region || ''] = peersIn[p.region || ''] || []).push(p.name); });
      cl.clusters.forEach((c) => { (clustersIn[c.region || ''] = clustersIn[c.region || ''] || []).push(c.name); });
      const hs = Object.fromEntries((health.v || []).map((h) => [h.cluster, h.state]));
      const cr = Object.fromEntries(cl.clusters.map((c) => [c.name, c.region || '']));
      replace(this.box,
        el('div', { class: 'tiles' }, tile('this peer\'s region', st.node.region || '—', 'tile-region'), tile('regions defined', regions.length, 'tile-regions')),
        el('section', { class: 'card' }, el('h2', {}, 'Defined regions'),
          table('regions-table', ['region', 'client networks', 'fallback', 'peers', 'clusters', ''],
            regions.map((r) => ({
              key: r.name,
              cells: [r.name, fmt.list(r.networks), fmt.list(r.fallback), fmt.list(peersIn[r.name]), fmt.list(clustersIn[r.name]),
                action('delete', 'Delete region ' + r.name + '?', () => api('DELETE', '/v1/regions/' + seg(r.name)), 'danger')],
            })), 'No region is defined: every client is in its peer\'s region.')),
        el('section', { class: 'card' }, el('h2', {}, 'Peers by region'),
          table('region-peers-table', ['peer', 'region', 'kafka address', 'live'],
            peers.peers.map((p) => ({ key: p.name, cells: [p.name, p.region || '—', p.kafka_addr, stateBadge(String(p.live))] })), 'No peer.')),
        el('section', { class: 'card' }, el('h2', {}, 'Clusters and failover'),
          table('region-failover-table', ['cluster', 'region', 'health', 'failover', 'since', 'routes moved#', 'manual', ''],
            fo.map((f) => ({
              key: f.cluster,
              cells: [f.cluster, cr[f.cluster] || '—', hs[f.cluster] ? stateBadge(hs[f.cluster]) : '—', stateBadge(f.state), fmt.time(f.since),
                f.routes_moved ?? 0, String(!!f.manual),
                f.state === 'active' ? action('fail over', 'Move every route of ' + f.cluster + ' to its fallback now?', () => api('POST', '/v1/failover/' + seg(f.cluster)), 'danger') :
                  action('fail back', 'Move the routes back to ' + f.cluster + ' now?', () => api('POST', '/v1/failback/' + seg(f.cluster)))],
            })), 'No cluster.')));
    },
  };

  // The peer allow-list: peers admitted without a peer certificate
  // (docs/security.md), this peer's static --allow-peer names, and the
  // members the leader refused, each with a button to allow it.
  pages.allowlist = {
    title: 'Peer allow-list',
    build(root) {
      this.box = el('div');
      const f = form('allow-form', [
        field('peer name', input('name', { id: 'f-allow-name', placeholder: 'peer-4', required: true })),
      ], el('button', { type: 'submit', id: 'allow-submit' }, 'Allow peer'), async (v) => {
        await api('PUT', '/v1/peers/allow-list/' + seg(v.name));
        return 'Allowed ' + v.name + '.';
      });
      root.append(el('h1', {}, 'Peer allow-list'),
        el('section', { class: 'card' }, el('h2', {}, 'Allow a peer'), f,
          el('p', { class: 'muted' }, 'A peer joins with a proven identity: a peer certificate, or a name on this list. Needs the admin role.')),
        this.box);
    },
    async refresh() {
      const d = await get('/v1/peers/allow-list');
      replace(this.box,
        el('section', { class: 'card' }, el('h2', {}, 'Replicated allow-list'),
          table('allow-table', ['peer', ''], d.allow_list.map((name) => ({
            key: name, cells: [name, action('remove', 'Remove ' + name + ' from the allow-list?', () => api('DELETE', '/v1/peers/allow-list/' + seg(name)), 'danger')],
          })), 'Nobody is on the replicated allow-list.')),
        el('section', { class: 'card' }, el('h2', {}, 'This peer\'s --allow-peer names'),
          table('allow-static-table', ['peer'], d.static.map((name) => ({ key: name, cells: [name] })), 'None.')),
        el('section', { class: 'card' }, el('h2', {}, 'Members refused (as this peer last saw them while leading)'),
          table('unproven-table', ['peer', 'reason', ''], d.unproven.map((u) => ({
            key: u.name, cells: [u.name, u.reason, action('allow', 'Allow ' + u.name + ' to join?', () => api('PUT', '/v1/peers/allow-list/' + seg(u.name)))],
          })), 'None.')));
    },
  };

  // ---- router and refresh loop ------------------------------------------

  let current = null;
  let timer = null;
  let generation = 0;
  let running = false;

  async function refreshNow() {
    if (!current || running) return;
    running = true;
    const gen = generation;
    const main = document.getElementById('main');
    const line = document.getElementById('status-line');
    try {
      await current.refresh();
      if (gen !== generation) return;
      main.dataset.loaded = current.name + ':' + (++current.loads);
      line.textContent = 'Updated ' + new Date().toLocaleTimeString() + ' from ' + location.host + ' · refreshes every ' + REFRESH_MS / 1000 + ' s';
      line.className = 'muted';
      current.errorBox.replaceChildren();
    } catch (err) {
      if (gen !== generation) return;
      current.errorBox.replaceChildren(errorBox(err));
      main.dataset.error = String(err.message);
      line.textContent = 'Last refresh failed: ' + err.message;
      line.className = 'error';
    } finally {
      running = false;
    }
  }

  function route() {
    const [name, ...rest] = (location.hash.replace(/^#/, '') || 'overview').split('/');
    const page = pages[name] || pages.overview;
    const pageName = pages[name] ? name : 'overview';
    generation++;
    const main = document.getElementById('main');
    main.replaceChildren();
    delete main.dataset.loaded;
    delete main.dataset.error;
    const ctx = Object.create(page);
    ctx.name = pageName;
    ctx.loads = 0;
    ctx.errorBox = el('div', { class: 'page-error' });
    main.append(ctx.errorBox);
    ctx.build(main, rest.length ? decodeURIComponent(rest.join('/')) : undefined);
    current = ctx;
    document.title = page.title + ' · Switchyard';
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#' + pageName);
    running = false;
    refreshNow();
    clearInterval(timer);
    timer = setInterval(() => { if (!document.hidden) refreshNow(); }, REFRESH_MS);
  }

  setupLogin();
  window.addEventListener('hashchange', route);
  route();
}());
