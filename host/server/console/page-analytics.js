// A store's analytics as tables: every query of the analytics plugin,
// asked once per visit and again on request.

import { ANALYTICS_PLUGIN, analytics } from './api.js';
import { errorBox, h, replace, table } from './dom.js';
import { clock, count, money, percentBp } from './format.js';

/** SKUs listed in each ranking: the plugin answers up to 100. */
const TOP_SKUS_LISTED = 20;

/** Busy minutes of the per-minute series shown, newest first. */
const MINUTES_SHOWN = 30;

export async function render({ view, params, signal }) {
  const store = params.store;
  const body = h('div', { class: 'grid halves' });
  const refresh = h('button', { type: 'button' }, 'Refresh');
  replace(view, h('div', { class: 'stack' },
    h('div', { class: 'row' }, h('h1', {}, `Analytics: ${store}`), refresh),
    h('p', { class: 'muted' }, `Figures from the ${ANALYTICS_PLUGIN} plugin, in integer minor units formatted in the store's currency.`),
    body));
  const load = async () => {
    const section = (title, content, wide) => h('section', { class: wide ? 'card wide' : 'card', 'aria-label': title }, h('h2', {}, title), content);
    const ask = async (name, args) => {
      try {
        return { answer: await analytics(store, name, args, { signal }) };
      } catch (error) {
        return { error };
      }
    };
    const [headline, series, byUnits, byRevenue, sellThrough, discounts] = await Promise.all([
      ask('headline'), ask('gmv-series'),
      ask('top-skus', { by: 'units', limit: TOP_SKUS_LISTED }), ask('top-skus', { by: 'revenue', limit: TOP_SKUS_LISTED }),
      ask('sell-through'), ask('discounts'),
    ]);
    if (signal.aborted) return;
    const shown = (result, show) => (result.error ? errorBox(result.error) : show(result.answer));
    const currency = headline.answer?.currency ?? null;
    replace(body,
      section('Headline', shown(headline, (a) => table([
        { label: 'Figure', cell: (r) => r[0] },
        { label: 'Value', cell: (r) => r[1], num: true },
      ], [
        ['GMV', money(a.gmv_minor, a.currency)],
        ['Orders (placed, not cancelled)', count(a.orders)],
        ['Orders placed', count(a.orders_placed)],
        ['Orders cancelled', count(a.orders_cancelled)],
        ['Orders paid', count(a.orders_paid)],
        ['Orders fulfilled', count(a.orders_fulfilled)],
        ['Units', count(a.units)],
        ['Average order value', money(a.average_order_value_minor, a.currency)],
        [`Orders per second (last ${a.recent_seconds} s)`, count(a.orders_per_second)],
        ['Refused attempts', count(a.refused_attempts)],
        ['Events folded in', count(a.events)],
        ['As of', clock(a.as_of_ms)],
      ], { label: 'Headline' }))),
      section('GMV per minute', shown(series, (a) => table([
        { label: 'Minute', cell: (p) => clock(p.start_ms), key: true },
        { label: 'Orders', cell: (p) => count(p.orders), num: true },
        { label: 'GMV', cell: (p) => money(p.gmv_minor, a.currency ?? currency), num: true },
        { label: 'Cancelled', cell: (p) => count(p.cancelled_orders), num: true },
      ], busyMinutes(a.minutes ?? []), { label: 'GMV per minute', empty: 'No orders yet.' }))),
      ...[['Top SKUs by units', byUnits], ['Top SKUs by revenue', byRevenue]].map(([title, result]) => section(title, shown(result, (a) => table([
        { label: '#', cell: (s) => s.rank, num: true },
        { label: 'SKU', cell: (s) => s.sku, key: true },
        { label: 'Units', cell: (s) => count(s.units), num: true },
        { label: 'Revenue', cell: (s) => money(s.revenue_minor, a.currency), num: true },
      ], a.skus ?? [], { label: title, empty: 'No orders yet.' })))),
      section('Flash-sale sell-through', shown(sellThrough, (a) => table([
        { label: 'SKU', cell: (s) => s.sku, key: true },
        { label: 'Attempts', cell: (s) => count(s.attempts), num: true },
        { label: 'Orders', cell: (s) => count(s.orders), num: true },
        { label: 'Units', cell: (s) => count(s.units), num: true },
        { label: 'Sold out refusals', cell: (s) => count(s.refused?.['sold-out']), num: true },
        { label: 'Limit refusals', cell: (s) => count(s.refused?.['purchase-limit']), num: true },
        { label: 'Available', cell: (s) => count(s.available), num: true },
        { label: 'Sell-through', cell: (s) => percentBp(s.sell_through_bp), num: true },
      ], a.skus ?? [], { label: 'Flash-sale sell-through', empty: 'No flash-sale SKUs are followed (flash_skus in the plugin configuration).' })), true),
      section('Discount spend', shown(discounts, (a) => h('div', {},
        h('p', {}, 'Total: ', h('strong', {}, money(a.total_minor, a.currency))),
        table([
          { label: 'Plugin', cell: (r) => r.plugin_id },
          { label: 'Rule', cell: (r) => r.code },
          { label: 'Uses', cell: (r) => count(r.uses), num: true },
          { label: 'Taken off', cell: (r) => money(r.amount_minor, a.currency), num: true },
        ], a.rules ?? [], { label: 'Discount spend', empty: 'No discounts given yet.' })))),
    );
  };
  refresh.addEventListener('click', async () => {
    refresh.disabled = true;
    try {
      await load();
    } finally {
      refresh.disabled = false;
    }
  });
  await load();
}

/** The minutes with orders or cancellations, newest first, at most
 * MINUTES_SHOWN of them: quiet minutes say nothing in a table. */
function busyMinutes(minutes) {
  return minutes.filter((p) => Number(p.orders) > 0 || Number(p.cancelled_orders) > 0).reverse().slice(0, MINUTES_SHOWN);
}
