// A store's orders, a page at a time, newest first, with the status
// changes a merchant makes by hand: pay, cancel, fulfil (also once robots
// have picked or packed an order).

import { call, get, seg } from './api.js';
import { actionButton, badge, errorBox, h, replace, table } from './dom.js';
import { count, moneyOf, time } from './format.js';

/** Orders on one page: a screenful. The API allows up to 100. */
const PAGE_SIZE = 20;

/** The badge tone of each status. */
const STATUS_TONE = { reserved: 'warn', paid: 'good', picked: 'good', packed: 'good', fulfilled: 'good', cancelled: 'bad' };

/** The statuses an order can be fulfilled by hand from: paid, and as far
 * as robots have brought it. */
const FULFILLABLE = ['paid', 'picked', 'packed'];

export async function render({ view, params, signal, notify }) {
  const store = params.store;
  const heading = h('h1', {}, `Orders: ${store}`);
  const summary = h('p', { class: 'muted', id: 'orders-summary' });
  const list = h('div', { id: 'orders' });
  const problem = h('div');
  const older = h('button', { type: 'button', id: 'older' }, '← Older');
  const newer = h('button', { type: 'button', id: 'newer' }, 'Newer →');
  const latest = h('button', { type: 'button', id: 'latest' }, 'Latest');
  replace(view, h('div', { class: 'stack' }, heading, summary, h('div', { class: 'card stack' },
    h('div', { class: 'row' }, older, newer, latest), problem, list)));

  // Order numbers run from 1 without gaps, so a page is "after N".
  let after = null;
  let total = 0;

  const load = async () => {
    const info = await get(`/v1/stores/${seg(store)}`, { signal });
    total = Number(info.orders);
    if (after === null) after = Math.max(0, total - PAGE_SIZE);
    const page = await get(`/v1/stores/${seg(store)}/orders?limit=${PAGE_SIZE}&after=${after}`, { signal });
    const orders = [...page.orders].reverse();
    summary.textContent = orders.length
      ? `Orders ${count(after + 1)} to ${count(after + page.orders.length)} of ${count(total)}, newest first.`
      : `${count(total)} orders.`;
    older.disabled = after === 0;
    newer.disabled = page.next_after === null || page.next_after === undefined;
    const change = (order, action, label) => actionButton(label, async () => {
      replace(problem);
      const changed = await call('POST', `/v1/stores/${seg(store)}/orders/${order.number}/${action}`, undefined, { signal });
      notify(`Order ${changed.number} is ${changed.status}.`);
      await load();
    }, { label: `${label} order ${order.number}`, kind: action === 'cancel' ? 'danger' : null, onError: (error) => replace(problem, errorBox(error)) });
    replace(list, table([
      { label: 'Order', cell: (o) => `#${o.number}`, num: true },
      { label: 'Status', cell: (o) => badge(o.status, STATUS_TONE[o.status]) },
      { label: 'Customer', cell: (o) => o.customer.id },
      { label: 'Lines', cell: (o) => o.lines.map((l) => `${l.quantity} × ${l.sku}`).join(', ') },
      { label: 'Discount', cell: (o) => moneyOf(o.totals.discount), num: true },
      { label: 'Total', cell: (o) => moneyOf(o.totals.total), num: true },
      { label: 'Placed', cell: (o) => time(o.placed_at_ms) },
      {
        label: 'Actions',
        cell: (o) => h('div', { class: 'row' },
          o.status === 'reserved' ? change(o, 'pay', 'Pay') : null,
          FULFILLABLE.includes(o.status) ? change(o, 'fulfil', 'Fulfil') : null,
          o.status === 'reserved' || o.status === 'paid' ? change(o, 'cancel', 'Cancel') : null),
      },
    ], orders, { label: 'Orders', empty: 'No orders yet.' }));
  };
  const go = (next) => async () => {
    after = next();
    replace(problem);
    try {
      await load();
    } catch (error) {
      if (!signal.aborted) replace(problem, errorBox(error));
    }
  };
  older.addEventListener('click', go(() => Math.max(0, after - PAGE_SIZE)));
  newer.addEventListener('click', go(() => after + PAGE_SIZE));
  latest.addEventListener('click', go(() => null));
  await load();
}
