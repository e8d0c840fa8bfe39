// A store's fleet: every device with what the kernel decided (online,
// quarantine, task) and what it last told the bus (battery, job, paused,
// driving, last seen), a map of each warehouse that has one with its
// nodes and the devices on it, and the emergency stop and resume of each
// zone. Refreshed every second while the page is open.

import { call, every, get, seg } from './api.js';
import { actionButton, badge, errorBox, field, h, replace, svg, table } from './dom.js';
import { clock, count } from './format.js';

/** How often the devices are read: a robot moves about a metre a second,
 * so a map redrawn each second follows it. */
const REFRESH_MS = 1000;

/** Devices asked for per request: the most the API returns. */
const DEVICES_PAGE = 200;

/** Most pages read per refresh: enough for the largest fleet one store
 * may register (4,096 devices), so a loop can never run on. */
const DEVICE_PAGES_MAX = 21;

/** Warehouses whose maps are looked for: one page of the API. */
const WAREHOUSES_MAX = 100;

/** Longest zone id the node takes (an identifier). */
const ZONE_CHARS_MAX = 64;

/** Width of a map in CSS pixels; its height follows the floor's shape,
 * up to MAP_HEIGHT_PX_MAX. */
const MAP_WIDTH_PX = 640;
const MAP_HEIGHT_PX_MAX = 480;

/** Blank space around the drawn floor, as a share of its larger side. */
const MAP_MARGIN_SHARE = 0.08;

/** A floor's width and height in millimetres at least, so a map of one
 * node still has a scale. */
const MAP_SPAN_MM_MIN = 2000;

/** Every device of the store, following the pages. */
async function allDevices(store, signal) {
  const devices = [];
  let after = null;
  let answer = null;
  for (let page = 0; page < DEVICE_PAGES_MAX; page++) {
    const query = `limit=${DEVICES_PAGE}${after ? `&after=${seg(after)}` : ''}`;
    answer = await get(`/v1/stores/${seg(store)}/devices?${query}`, { signal });
    devices.push(...answer.devices);
    after = answer.next_after ?? null;
    if (after === null) break;
  }
  return { devices, stoppedZones: answer.stopped_zones, bus: answer.bus };
}

/** Every warehouse of the store with its map, if it has one. */
async function maps(store, signal) {
  const listed = await get(`/v1/stores/${seg(store)}/warehouses?limit=${WAREHOUSES_MAX}`, { signal });
  const found = [];
  for (const warehouse of listed.warehouses) {
    try {
      const stored = await get(`/v1/stores/${seg(store)}/warehouses/${seg(warehouse.id)}/layout`, { signal });
      found.push({ warehouse: warehouse.id, layout: stored.layout });
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  return { warehouses: listed.warehouses.map((w) => w.id), maps: found };
}

/** The bus's state as a badge. */
function busBadge(bus) {
  if (!bus.enabled) return badge('device bus disabled', 'bad');
  return bus.connected ? badge('device bus connected', 'good') : badge('device bus disconnected', 'bad');
}

/** A battery charge in tenths of a percent, as a percentage. */
function battery(permille) {
  if (permille === null || permille === undefined) return '—';
  return `${Math.floor(permille / 10)}.${permille % 10}%`;
}

/**
 * The SVG map of `layout` with `devices` on it: millimetres map to pixels
 * through the view box (north up), so the drawing scales with the page.
 */
function drawMap(warehouse, layout, devices) {
  const placed = devices.filter((d) => d.telemetry?.position && d.telemetry.position.map_id === layout.map_id);
  const xs = [...layout.nodes.map((n) => n.x_mm), ...placed.map((d) => d.telemetry.position.x_mm)];
  const ys = [...layout.nodes.map((n) => n.y_mm), ...placed.map((d) => d.telemetry.position.y_mm)];
  const minX = Math.min(0, ...xs);
  const maxX = Math.max(0, ...xs);
  const minY = Math.min(0, ...ys);
  const maxY = Math.max(0, ...ys);
  const span = Math.max(maxX - minX, maxY - minY, MAP_SPAN_MM_MIN);
  const margin = span * MAP_MARGIN_SHARE;
  const width = Math.max(maxX - minX, MAP_SPAN_MM_MIN) + 2 * margin;
  const height = Math.max(maxY - minY, MAP_SPAN_MM_MIN) + 2 * margin;
  const radius = span / 80;
  const heightPx = Math.min(MAP_HEIGHT_PX_MAX, Math.round((MAP_WIDTH_PX * height) / width));
  // SVG's y grows downwards; a map's grows northwards.
  const at = (xMm, yMm) => ({ x: xMm, y: -yMm });
  const label = (point, text, cls) => svg('text', { x: point.x + radius * 1.4, y: point.y - radius * 0.6, class: cls, 'font-size': radius * 2.2 }, text);
  const nodes = layout.nodes.map((node) => {
    const point = at(node.x_mm, node.y_mm);
    const isPack = node.id === layout.pack_station;
    const mark = isPack
      ? svg('rect', { x: point.x - radius, y: point.y - radius, width: radius * 2, height: radius * 2, class: 'map-pack' })
      : svg('circle', { cx: point.x, cy: point.y, r: radius * 0.6, class: 'map-node' });
    return svg('g', {}, svg('title', {}, `${node.id} (${node.x_mm}, ${node.y_mm}) mm`), mark,
      layout.nodes.length <= 200 || isPack ? label(point, node.id, 'map-label') : null);
  });
  const robots = placed.map((device) => {
    const position = device.telemetry.position;
    const point = at(position.x_mm, position.y_mm);
    const state = device.quarantine ? 'bad' : !device.online ? 'off' : device.telemetry.paused ? 'warn' : 'good';
    return svg('g', { class: 'map-device', 'data-device': device.id },
      svg('title', {}, `${device.id}: (${position.x_mm}, ${position.y_mm}) mm`),
      svg('circle', { cx: point.x, cy: point.y, r: radius * 1.3, class: `map-robot ${state}` }),
      label(point, device.id, 'map-robot-label'));
  });
  const viewBox = [minX - margin, -maxY - margin, width, height].join(' ');
  return h('figure', { class: 'map' },
    svg('svg', { viewBox, width: MAP_WIDTH_PX, height: heightPx, role: 'img', 'aria-label': `Map of ${warehouse}`, id: `map-${warehouse}` },
      ...nodes, ...robots),
    h('figcaption', { class: 'muted small' },
      `${warehouse}: map ${layout.map_id}, ${count(layout.nodes.length)} nodes, ${count(placed.length)} devices placed; the square is the pack station.`));
}

export async function render({ view, params, signal, notify }) {
  const store = params.store;
  const busState = h('span', { id: 'bus-state' });
  const zones = h('div', { id: 'zones' });
  const devicesBox = h('div', { id: 'devices' });
  const mapsBox = h('div', { class: 'stack', id: 'maps' });
  const checked = h('p', { class: 'muted small', 'aria-live': 'polite' });
  const problem = h('div');
  const warehouseInput = h('select', { id: 'stop-warehouse' });
  const zoneInput = h('input', { type: 'text', id: 'stop-zone', required: true, maxlength: ZONE_CHARS_MAX, pattern: '[A-Za-z0-9._\\-]+' });
  const stopForm = h('form', { class: 'row', 'aria-label': 'Stop a zone' },
    field('Warehouse', warehouseInput), field('Zone', zoneInput),
    h('button', { type: 'submit', class: 'danger' }, 'Emergency stop'));
  replace(view, h('div', { class: 'stack' },
    h('div', { class: 'row' }, h('h1', {}, `Fleet: ${store}`), busState),
    h('p', { class: 'muted' }, 'An emergency stop pauses every device of a zone at once and starts no task there until the zone is resumed. A device whose driver failed is quarantined until someone releases it.'),
    problem,
    h('section', { class: 'card stack', 'aria-labelledby': 'zones-title' }, h('h2', { id: 'zones-title' }, 'Zones'), zones, stopForm),
    h('section', { class: 'card stack', 'aria-labelledby': 'devices-title' }, h('h2', { id: 'devices-title' }, 'Devices'), devicesBox, checked),
    h('section', { class: 'card stack', 'aria-labelledby': 'maps-title' }, h('h2', { id: 'maps-title' }, 'Maps'), mapsBox)));

  const floor = await maps(store, signal);
  replace(warehouseInput, floor.warehouses.map((id) => h('option', { value: id }, id)));

  const changeZone = async (warehouse, zone, action) => {
    replace(problem);
    const changed = await call('POST', `/v1/stores/${seg(store)}/warehouses/${seg(warehouse)}/zones/${seg(zone)}/${action}`, undefined, { signal });
    notify(`${changed.warehouse}/${changed.zone} is ${changed.stopped ? 'stopped' : 'running'}; ${count(changed.devices_commanded)} device${changed.devices_commanded === 1 ? '' : 's'} commanded.`);
    await refresh();
  };
  const showError = (error) => replace(problem, errorBox(error));
  stopForm.addEventListener('submit', (event) => {
    event.preventDefault();
    changeZone(warehouseInput.value, zoneInput.value.trim(), 'emergency-stop').catch(showError);
  });

  const refresh = async () => {
    const { devices, stoppedZones, bus } = await allDevices(store, signal);
    replace(busState, busBadge(bus));
    // Zones: those with devices, and those held without any.
    const known = new Map();
    for (const d of devices) known.set(`${d.warehouse}/${d.zone}`, { warehouse: d.warehouse, zone: d.zone, stopped: d.zone_stopped, devices: 0 });
    for (const z of stoppedZones) {
      const key = `${z.warehouse}/${z.zone}`;
      known.set(key, { ...(known.get(key) ?? { warehouse: z.warehouse, zone: z.zone, devices: 0 }), stopped: true });
    }
    for (const d of devices) known.get(`${d.warehouse}/${d.zone}`).devices += 1;
    const zoneRows = [...known.values()].sort((a, b) => `${a.warehouse}/${a.zone}`.localeCompare(`${b.warehouse}/${b.zone}`));
    replace(zones, table([
      { label: 'Zone', cell: (z) => `${z.warehouse}/${z.zone}`, key: true },
      { label: 'State', cell: (z) => (z.stopped ? badge('stopped', 'bad') : badge('running', 'good')) },
      { label: 'Devices', cell: (z) => count(z.devices), num: true },
      {
        label: 'Action',
        cell: (z) => (z.stopped
          ? actionButton('Resume', () => changeZone(z.warehouse, z.zone, 'resume'), { label: `Resume ${z.warehouse}/${z.zone}`, onError: showError })
          : actionButton('Emergency stop', () => changeZone(z.warehouse, z.zone, 'emergency-stop'), { kind: 'danger', label: `Emergency stop ${z.warehouse}/${z.zone}`, onError: showError })),
      },
    ], zoneRows, { label: 'Zones', empty: 'No zone has devices or is stopped.' }));
    const release = (d) => actionButton('Release', async () => {
      replace(problem);
      await call('POST', `/v1/stores/${seg(store)}/devices/${seg(d.id)}/release`, undefined, { signal });
      notify(`Device ${d.id} is back in service.`);
      await refresh();
    }, { label: `Release ${d.id}`, onError: showError });
    replace(devicesBox, table([
      { label: 'Device', cell: (d) => d.id, key: true },
      { label: 'Kind', cell: (d) => d.kind },
      { label: 'Warehouse / zone', cell: (d) => `${d.warehouse}/${d.zone}` },
      { label: 'Online', cell: (d) => (d.online ? badge('online', 'good') : badge('offline', 'warn')) },
      { label: 'Quarantine', cell: (d) => (d.quarantine ? h('div', { class: 'stack' }, badge('quarantined', 'bad'), h('div', { class: 'small' }, d.quarantine.reason), release(d)) : '—') },
      { label: 'Battery', cell: (d) => battery(d.telemetry?.battery_permille), num: true },
      { label: 'Task / job', cell: (d) => [d.task === null ? '—' : `task ${d.task}`, d.telemetry?.job ? ` (${d.telemetry.job})` : ''].join('') },
      { label: 'Paused', cell: (d) => (d.telemetry?.paused ? badge('paused', 'warn') : 'no') },
      { label: 'Driving', cell: (d) => (d.telemetry?.driving ? 'yes' : 'no') },
      { label: 'Errors', cell: (d) => (d.telemetry?.errors?.length ? d.telemetry.errors.map((e) => `${e.level}: ${e.error_type}`).join('; ') : '—') },
      { label: 'Last seen', cell: (d) => clock(d.telemetry?.last_seen_ms) },
    ], devices, { label: 'Devices', empty: 'No device is registered in this store.' }));
    replace(mapsBox, floor.maps.length === 0
      ? h('p', { class: 'muted' }, 'No warehouse of this store has a map yet.')
      : floor.maps.map(({ warehouse, layout }) => drawMap(warehouse, layout, devices.filter((d) => d.warehouse === warehouse))));
    checked.textContent = `Checked at ${clock(Date.now())}.`;
  };
  every(REFRESH_MS, signal, refresh, showError);
}
