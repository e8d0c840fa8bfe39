// The operator's plugin versions: which version runs, hot swaps (activate,
// roll back), shadow runs (start, read the comparison, promote, stop),
// removing old versions, and each version's call counters.

import { ApiError, call, get, seg } from './api.js';
import { actionButton, badge, errorBox, field, h, replace, table } from './dom.js';
import { bytes, count, time } from './format.js';

/** The badge tone of each version status. */
const STATUS_TONE = { active: 'good', shadow: 'warn', available: null };

export async function render(context) {
  if (context.params.plugin) return detail(context);
  const listing = await get('/v1/plugins', { signal: context.signal });
  replace(context.view, h('div', { class: 'stack' },
    h('h1', {}, 'Plugins'),
    h('div', { class: 'card' }, table([
      { label: 'Plugin', cell: (p) => h('a', { href: `#/plugins/${encodeURIComponent(p.id)}` }, p.id) },
      { label: 'Name', cell: (p) => p.name },
      { label: 'Kind', cell: (p) => p.kind },
      { label: 'Publisher', cell: (p) => p.publisher },
      { label: 'Active', cell: (p) => p.active ?? '—' },
      { label: 'Versions', cell: (p) => p.versions.map((v) => v.version).join(', ') },
      { label: 'Shadow', cell: (p) => (p.shadow ? `${p.shadow.version} on ${p.shadow.share_percent}%` : '—') },
    ], listing.plugins, { label: 'Installed plugins', empty: 'No plugin is installed.' }))));
}

/** One plugin's versions and controls. */
async function detail({ view, params, signal, notify }) {
  const id = params.plugin;
  const problem = h('div', { id: 'plugin-problem' });
  const fail = (error) => replace(problem, errorBox(error));
  const load = async () => {
    const [plugin, stats, shadow] = await Promise.all([
      get(`/v1/plugins/${seg(id)}`, { signal }),
      get(`/v1/plugins/${seg(id)}/stats`, { signal }),
      get(`/v1/plugins/${seg(id)}/shadow`, { signal }).catch((error) => {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }),
    ]);
    const act = async (method, path, body, done) => {
      replace(problem);
      const answer = await call(method, path, body, { signal });
      notify(done(answer));
      await load();
    };
    const swapWords = (swap) => `${swap.plugin}: ${swap.from ?? 'nothing'} → ${swap.to} (swapped in ${count(swap.elapsed_us)} µs)`;
    const versions = table([
      { label: 'Version', cell: (v) => h('code', {}, v.version) },
      { label: 'Status', cell: (v) => badge(v.status, STATUS_TONE[v.status]) },
      { label: 'Signed', cell: (v) => (v.signed ? 'yes' : 'bundled') },
      { label: 'Size', cell: (v) => bytes(v.size_bytes), num: true },
      { label: 'Installed', cell: (v) => time(v.installed_at_ms) },
      { label: 'Hash', cell: (v) => h('code', { class: 'small', title: v.content_hash }, v.content_hash.slice(0, 12)) },
      {
        label: 'Actions',
        cell: (v) => h('div', { class: 'row' },
          v.status !== 'active' ? actionButton('Activate', () => act('POST', `/v1/plugins/${seg(id)}/activate`, { version: v.version }, swapWords),
            { label: `Activate ${v.version}`, onError: fail }) : null,
          v.status === 'available' ? actionButton('Remove', () => act('DELETE', `/v1/plugins/${seg(id)}/versions/${seg(v.version)}`, undefined,
            () => `${id} ${v.version} is removed.`), { label: `Remove ${v.version}`, kind: 'danger', onError: fail }) : null),
      },
    ], plugin.versions, { label: 'Versions' });
    const rollback = actionButton('Roll back', () => act('POST', `/v1/plugins/${seg(id)}/rollback`, undefined, swapWords),
      { label: `Roll back ${id}`, onError: fail });
    replace(view, h('div', { class: 'stack' },
      h('p', {}, h('a', { href: '#/plugins' }, '← Plugins')),
      h('h1', {}, plugin.name),
      h('p', { class: 'muted' }, h('code', {}, plugin.id), ` · ${plugin.kind} · by ${plugin.publisher} · ${plugin.failure_policy}`),
      problem,
      h('section', { class: 'card stack', 'aria-label': 'Versions' },
        h('div', { class: 'row' }, h('h2', {}, 'Versions'),
          h('span', {}, 'Active: ', h('strong', { id: 'active-version' }, plugin.active ?? 'none')), rollback),
        versions),
      shadowSection(id, plugin, shadow, act, fail),
      h('section', { class: 'card', 'aria-label': 'Calls since the node started' }, h('h2', {}, 'Calls since the node started'), table([
        { label: 'Version', cell: (v) => v.version },
        { label: 'Calls', cell: (v) => count(v.calls), num: true },
        { label: 'Failures', cell: (v) => count(v.failures), num: true },
        { label: 'Traps', cell: (v) => count(v.traps), num: true },
        { label: 'Instances', cell: (v) => count(v.instantiations), num: true },
      ], stats.versions, { label: 'Call counters', empty: 'No calls yet.' }))));
  };
  await load();
}

/** The shadow run: its comparison and controls, or a form to start one. */
function shadowSection(id, plugin, shadow, act, fail) {
  const section = h('section', { class: 'card stack', 'aria-label': 'Shadow run' }, h('h2', {}, 'Shadow run'));
  if (shadow) {
    section.append(
      h('p', {}, `Version ${shadow.version} runs beside the active one on ${shadow.share_percent}% of calls; its output is compared, never used.`),
      h('div', { class: 'figures', id: 'shadow-counts' },
        [['compared', shadow.compared], ['same', shadow.same], ['different', shadow.different], ['shadow failed', shadow.shadow_failed]]
          .map(([label, value]) => h('div', { class: 'figure' }, h('strong', {}, count(value)), h('span', {}, label)))),
      h('h3', {}, 'Latest differences'),
      table([
        { label: 'Store', cell: (s) => s.store },
        { label: 'Active answered', cell: (s) => h('code', { class: 'small' }, s.active) },
        { label: 'Shadow answered', cell: (s) => h('code', { class: 'small' }, s.shadow) },
      ], shadow.samples, { label: 'Shadow differences', empty: 'No differences so far.' }),
      h('div', { class: 'row' },
        actionButton('Promote', () => act('POST', `/v1/plugins/${seg(id)}/shadow/promote`, undefined,
          (swap) => `${swap.to} is promoted to active.`), { kind: 'primary', label: `Promote shadow ${shadow.version}`, onError: fail }),
        actionButton('Stop', () => act('DELETE', `/v1/plugins/${seg(id)}/shadow`, undefined,
          () => `The shadow run of ${id} has stopped.`), { kind: 'danger', label: 'Stop the shadow run', onError: fail })));
    return section;
  }
  const candidates = plugin.versions.filter((v) => v.status !== 'active');
  if (candidates.length === 0) {
    section.append(h('p', { class: 'muted' }, 'Install another version to try it beside the active one.'));
    return section;
  }
  const version = h('select', { id: 'shadow-version' }, candidates.map((v) => h('option', { value: v.version }, v.version)));
  const share = h('input', { type: 'number', id: 'shadow-share', min: 1, max: 100, step: 1, value: 10 });
  const form = h('form', { class: 'row', 'aria-label': 'Start a shadow run' },
    field('Version to try', version), field('Share of calls (%)', share),
    h('button', { type: 'submit', class: 'primary' }, 'Start shadow run'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await act('PUT', `/v1/plugins/${seg(id)}/shadow`, { version: version.value, share_percent: Number(share.value) },
        (run) => `${run.version} now runs in the shadow on ${run.share_percent}% of calls.`);
    } catch (error) {
      fail(error);
    }
  });
  section.append(h('p', { class: 'muted' }, 'A shadow run compares a version with the active one on a share of real calls without using its output.'), form);
  return section;
}
