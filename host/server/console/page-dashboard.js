// The live Double-11 dashboard of one store: the GMV counter and headline
// figures pushed by the analytics stream, orders per second over the last
// two minutes, the best sellers, stock-out alerts and plugin health,
// refreshed by periodic queries.

import { ANALYTICS_PLUGIN, ApiError, analytics, analyticsStreamPath, every, get, pause, seg, stream } from './api.js';
import { badge, errorBox, h, replace, table } from './dom.js';
import { clock, count, money, percentBp } from './format.js';
import { CHART_SECONDS, drawOrdersPerSecond } from './chart.js';

/** How often the series, best sellers, sell-through and breakers are
 * queried: often enough to follow a flash sale, rare enough to cost the
 * node nothing. */
const REFRESH_MS = 2000;

/** How often the headline is queried while the stream is down. */
const HEADLINE_POLL_MS = 1000;

/** First wait before reconnecting a dropped stream; it doubles up to
 * STREAM_RETRY_MS_MAX so a node that is down is not hammered. */
const STREAM_RETRY_MS_MIN = 500;
const STREAM_RETRY_MS_MAX = 15000;

/** Best sellers shown in each table. */
const TOP_SKUS_SHOWN = 5;

export async function render({ view, params, signal }) {
  const store = params.store;
  const liveState = h('span', { class: 'live', id: 'live-state', 'data-state': 'connecting' }, 'connecting');
  const gmv = h('div', { class: 'gmv', id: 'gmv', 'aria-live': 'polite', 'aria-label': 'Gross merchandise value' }, '—');
  const figures = h('div', { class: 'figures' });
  const headlineProblem = h('div');
  const canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': `Orders per second over the last ${CHART_SECONDS} seconds` });
  const chartSummary = h('p', { class: 'muted small', id: 'chart-summary' });
  const topUnits = h('div', { id: 'top-units' });
  const topRevenue = h('div', { id: 'top-revenue' });
  const alerts = h('div', { id: 'stock-alerts' });
  const health = h('div', { id: 'plugin-health' });
  const refreshProblem = h('div');

  replace(view,
    h('div', { class: 'row' }, h('h1', {}, `Double-11 live: ${store}`), liveState),
    h('div', { class: 'grid' },
      h('section', { class: 'card wide', 'aria-labelledby': 'gmv-title' },
        h('h2', { id: 'gmv-title' }, 'GMV'), gmv, figures, headlineProblem),
      h('section', { class: 'card wide', 'aria-labelledby': 'chart-title' },
        h('h2', { id: 'chart-title' }, 'Orders per second'), canvas, chartSummary),
      h('section', { class: 'card', 'aria-labelledby': 'units-title' }, h('h2', { id: 'units-title' }, 'Top SKUs by units'), topUnits),
      h('section', { class: 'card', 'aria-labelledby': 'revenue-title' }, h('h2', { id: 'revenue-title' }, 'Top SKUs by revenue'), topRevenue),
      h('section', { class: 'card', 'aria-labelledby': 'alerts-title' }, h('h2', { id: 'alerts-title' }, 'Stock-out alerts'), alerts),
      h('section', { class: 'card', 'aria-labelledby': 'health-title' }, h('h2', { id: 'health-title' }, 'Plugin health'), health),
      h('div', { class: 'wide' }, refreshProblem),
    ));

  const storeInfo = await get(`/v1/stores/${seg(store)}`, { signal });
  let currency = storeInfo.currency;

  const showHeadline = (headline) => {
    currency = headline.currency ?? currency;
    gmv.textContent = money(headline.gmv_minor, currency);
    gmv.dataset.gmvMinor = String(headline.gmv_minor);
    const figure = (label, value, id) => h('div', { class: 'figure' }, h('strong', { id }, value), h('span', {}, label));
    replace(figures,
      figure('orders', count(headline.orders), 'orders-count'),
      figure('orders per second', count(headline.orders_per_second), 'orders-per-second'),
      figure('average order', money(headline.average_order_value_minor, currency), 'average-order'),
      figure('units', count(headline.units), 'units'),
      figure('cancelled', count(headline.orders_cancelled), 'cancelled'),
      figure('refused attempts', count(headline.refused_attempts), 'refused'),
      figure('as of', clock(headline.as_of_ms), 'as-of'));
    replace(headlineProblem);
  };
  const analyticsProblem = (error) => {
    const hint = error instanceof ApiError && error.status === 404
      ? h('p', { class: 'muted small' }, `The figures come from the ${ANALYTICS_PLUGIN} plugin: enable it for this store in the marketplace.`)
      : null;
    return [errorBox(error), hint];
  };

  let streaming = false;
  const setLive = (state, text) => {
    liveState.dataset.state = state;
    liveState.textContent = text;
  };

  // The stream pushes each new headline; while it is down the headline is
  // polled instead, so the counter never freezes.
  (async () => {
    let wait = STREAM_RETRY_MS_MIN;
    while (!signal.aborted) {
      try {
        await stream(analyticsStreamPath(store), (name, data) => {
          if (name === 'error') {
            // The node could not answer this tick: say so, and let the
            // poller try until the stream's next headline.
            streaming = false;
            setLive('down', 'delayed');
            replace(headlineProblem, analyticsProblem(data?.error ?? { message: String(data) }));
            return;
          }
          if (name !== 'headline' || typeof data !== 'object') return;
          streaming = true;
          wait = STREAM_RETRY_MS_MIN;
          setLive('live', 'live');
          showHeadline(data);
        }, signal);
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
          // Refused (no such route, plugin not enabled): polling it is.
          streaming = false;
          setLive('polling', 'polling');
          return;
        }
      }
      streaming = false;
      if (signal.aborted) return;
      setLive('down', 'reconnecting');
      await pause(wait, signal);
      wait = Math.min(wait * 2, STREAM_RETRY_MS_MAX);
    }
  })();

  every(HEADLINE_POLL_MS, signal, async () => {
    if (streaming) return;
    showHeadline(await analytics(store, 'headline', {}, { signal }));
  }, (error) => replace(headlineProblem, analyticsProblem(error)));

  every(REFRESH_MS, signal, async () => {
    const [series, byUnits, byRevenue, sellThrough] = await Promise.all([
      analytics(store, 'gmv-series', {}, { signal }),
      analytics(store, 'top-skus', { by: 'units', limit: TOP_SKUS_SHOWN }, { signal }),
      analytics(store, 'top-skus', { by: 'revenue', limit: TOP_SKUS_SHOWN }, { signal }),
      analytics(store, 'sell-through', {}, { signal }),
    ]);
    const seconds = series.seconds ?? [];
    drawOrdersPerSecond(canvas, seconds);
    const latest = seconds.length ? seconds[seconds.length - 1] : null;
    const recent = seconds.filter((p) => latest && Number(latest.start_ms) - Number(p.start_ms) < CHART_SECONDS * 1000);
    const total = recent.reduce((sum, p) => sum + Number(p.orders), 0);
    const peak = recent.reduce((max, p) => Math.max(max, Number(p.orders)), 0);
    chartSummary.textContent = latest
      ? `${count(total)} orders in the ${CHART_SECONDS} s up to ${clock(latest.start_ms)}; peak ${count(peak)} in one second.`
      : 'No orders yet.';
    const skuColumns = (c) => [
      { label: '#', cell: (s) => s.rank, num: true },
      { label: 'SKU', cell: (s) => s.sku, key: true },
      { label: 'Units', cell: (s) => count(s.units), num: true },
      { label: 'Revenue', cell: (s) => money(s.revenue_minor, c), num: true },
    ];
    replace(topUnits, table(skuColumns(byUnits.currency ?? currency), byUnits.skus ?? [], { label: 'Top SKUs by units', empty: 'No orders yet.' }));
    replace(topRevenue, table(skuColumns(byRevenue.currency ?? currency), byRevenue.skus ?? [], { label: 'Top SKUs by revenue', empty: 'No orders yet.' }));
    showAlerts(alerts, sellThrough.skus ?? []);
    replace(refreshProblem);
  }, (error) => replace(refreshProblem, analyticsProblem(error)));

  // Plugin health comes from the node, not from analytics: it shows even
  // when the analytics plugin is not enabled.
  every(REFRESH_MS, signal, async () => {
    const breakers = await get('/v1/breakers', { signal });
    showHealth(health, (breakers.breakers ?? []).filter((b) => b.store === store));
  }, (error) => replace(health, errorBox(error)));
}

/** The flash-sale SKUs with nothing left, and how the others are doing. */
function showAlerts(element, skus) {
  if (skus.length === 0) {
    replace(element, h('p', { class: 'muted' },
      `No flash-sale SKUs are followed: list them as flash_skus in the ${ANALYTICS_PLUGIN} configuration.`));
    return;
  }
  const soldOut = skus.filter((s) => Number(s.available) === 0);
  replace(element,
    soldOut.length === 0
      ? h('p', { class: 'ok' }, badge('in stock', 'good'), ' Every flash-sale SKU has stock.')
      : h('ul', { role: 'list', 'aria-label': 'Sold-out SKUs' }, soldOut.map((s) =>
        h('li', { class: 'stock-out' }, badge('sold out', 'bad'), ' ', h('strong', {}, s.sku),
          ` — ${count(s.units)} units sold, ${count(s.refused?.['sold-out'] ?? 0)} attempts refused for stock`))),
    table([
      { label: 'SKU', cell: (s) => s.sku, key: true },
      { label: 'Available', cell: (s) => count(s.available), num: true },
      { label: 'Sold', cell: (s) => count(s.units), num: true },
      { label: 'Sell-through', cell: (s) => percentBp(s.sell_through_bp), num: true },
    ], skus, { label: 'Flash-sale sell-through' }));
}

/** The store's circuit breakers that are not plainly closed. */
function showHealth(element, breakers) {
  if (breakers.length === 0) {
    replace(element, h('p', {}, badge('healthy', 'good'), ' Every plugin answers: no breaker has recent failures.'));
    return;
  }
  const tone = (state) => (state === 'open' ? 'bad' : state === 'half-open' ? 'warn' : 'warn');
  replace(element, table([
    { label: 'Plugin', cell: (b) => b.plugin },
    { label: 'Breaker', cell: (b) => badge(b.state, tone(b.state)) },
    { label: 'Failures in a row', cell: (b) => count(b.consecutive_failures), num: true },
    { label: 'Retry at', cell: (b) => clock(b.open_until_ms) },
  ], breakers, { label: 'Circuit breakers' }));
}
