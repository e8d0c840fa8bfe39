// The dashboard's orders-per-second chart: one bar a second on a canvas,
// drawn whole on each refresh (120 bars cost nothing to draw).

/** Seconds the chart spans: the analytics plugin keeps 120 per-second
 * buckets, and two minutes show a flash sale's opening at a glance. */
export const CHART_SECONDS = 120;

const BAR = '#d4380d';
const AXIS = '#8c959f';
const TEXT = '#656d76';

/**
 * Draws the orders of the last CHART_SECONDS seconds of `points`
 * (`{start_ms, orders}`, one per second, oldest first) on `canvas`,
 * ending at the latest point's second.
 */
export function drawOrdersPerSecond(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 180;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);

  const bySecond = new Map();
  let latest = null;
  for (const point of points) {
    const second = Math.floor(Number(point.start_ms) / 1000);
    bySecond.set(second, Number(point.orders));
    if (latest === null || second > latest) latest = second;
  }
  const left = 36;
  const bottom = height - 20;
  const top = 10;
  const plotWidth = width - left - 8;
  let peak = 1;
  for (let age = 0; age < CHART_SECONDS && latest !== null; age++) {
    peak = Math.max(peak, bySecond.get(latest - age) ?? 0);
  }

  context.strokeStyle = AXIS;
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(left, top);
  context.lineTo(left, bottom + 0.5);
  context.lineTo(left + plotWidth, bottom + 0.5);
  context.stroke();
  context.fillStyle = TEXT;
  context.font = '11px system-ui, sans-serif';
  context.textAlign = 'right';
  context.textBaseline = 'middle';
  context.fillText(String(peak), left - 4, top + 4);
  context.fillText('0', left - 4, bottom);
  context.textAlign = 'left';
  context.textBaseline = 'top';
  context.fillText(`−${CHART_SECONDS} s`, left, bottom + 4);
  context.textAlign = 'right';
  context.fillText('latest', left + plotWidth, bottom + 4);

  if (latest === null) return;
  const slot = plotWidth / CHART_SECONDS;
  context.fillStyle = BAR;
  for (let age = 0; age < CHART_SECONDS; age++) {
    const orders = bySecond.get(latest - age) ?? 0;
    if (orders <= 0) continue;
    const barHeight = Math.max(1, ((bottom - top) * orders) / peak);
    const x = left + plotWidth - (age + 1) * slot;
    context.fillRect(x + 1, bottom - barHeight, Math.max(1, slot - 1), barHeight);
  }
}
