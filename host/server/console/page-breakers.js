// Every circuit breaker (per plugin per store) that is not plainly closed,
// refreshed while the page is open.

import { every, get } from './api.js';
import { badge, errorBox, h, replace, table } from './dom.js';
import { clock, count } from './format.js';

/** How often the breakers are read: a breaker's backoff starts at a
 * second, so this shows every state it passes through. */
const REFRESH_MS = 1000;

export async function render({ view, signal }) {
  const list = h('div', { id: 'breakers' });
  const checked = h('p', { class: 'muted small', 'aria-live': 'polite' });
  replace(view, h('div', { class: 'stack' },
    h('h1', {}, 'Circuit breakers'),
    h('p', { class: 'muted' }, 'A plugin that fails for a store five times in a row is skipped there under its failure policy until a probe call succeeds. Closed breakers without recent failures are not listed.'),
    h('div', { class: 'card stack' }, list, checked)));
  every(REFRESH_MS, signal, async () => {
    const answer = await get('/v1/breakers', { signal });
    const tone = (state) => (state === 'open' ? 'bad' : 'warn');
    replace(list, answer.breakers.length === 0
      ? h('p', {}, badge('healthy', 'good'), ' No breaker has recent failures.')
      : table([
        { label: 'Store', cell: (b) => h('a', { href: `#/stores/${encodeURIComponent(b.store)}/dashboard` }, b.store) },
        { label: 'Plugin', cell: (b) => h('a', { href: `#/plugins/${encodeURIComponent(b.plugin)}` }, b.plugin) },
        { label: 'State', cell: (b) => badge(b.state, tone(b.state)) },
        { label: 'Failures in a row', cell: (b) => count(b.consecutive_failures), num: true },
        { label: 'Probe at', cell: (b) => clock(b.open_until_ms) },
        { label: 'Backoff', cell: (b) => (b.backoff_ms === null ? '—' : `${count(b.backoff_ms)} ms`), num: true },
      ], answer.breakers, { label: 'Circuit breakers' }));
    checked.textContent = `Checked at ${clock(Date.now())}.`;
  }, (error) => replace(list, errorBox(error)));
}
