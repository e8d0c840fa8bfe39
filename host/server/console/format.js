// Figures as people read them. Money arrives as integer minor units and is
// formatted with integer division (BigInt), never through a float, so what
// the page shows is exactly what the node holds.

/** Digits after the decimal point of a currency (its ISO-4217 exponent),
 * as the node's SDK has them: 0 for JPY or KRW, 3 for KWD, 4 for CLF, 2 for
 * every other code. */
export function minorDigits(currency) {
  switch (currency) {
    case 'BIF': case 'CLP': case 'DJF': case 'GNF': case 'ISK': case 'JPY': case 'KMF': case 'KRW':
    case 'PYG': case 'RWF': case 'UGX': case 'UYI': case 'VND': case 'VUV': case 'XAF': case 'XOF': case 'XPF':
      return 0;
    case 'BHD': case 'IQD': case 'JOD': case 'KWD': case 'LYD': case 'OMR': case 'TND':
      return 3;
    case 'CLF': case 'UYW':
      return 4;
    default:
      return 2;
  }
}

/** An integer (number, BigInt or digit string) as a BigInt, or null. */
function integer(value) {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return null;
}

/** Digits grouped by thousands: 1234567 → "1,234,567". */
function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A whole number with thousands separators: 1234567 → "1,234,567". */
export function count(value) {
  const n = integer(value);
  if (n === null) return '—';
  const sign = n < 0n ? '-' : '';
  return sign + group((n < 0n ? -n : n).toString());
}

/**
 * `amountMinor` minor units of `currency`: (599900, "CNY") → "5,999.00 CNY";
 * (1200, "JPY") → "1,200 JPY". An amount that is not an integer shows as a
 * dash rather than a guess.
 */
export function money(amountMinor, currency) {
  const amount = integer(amountMinor);
  if (amount === null) return '—';
  const code = currency ?? '';
  const digits = minorDigits(code);
  const sign = amount < 0n ? '-' : '';
  const magnitude = amount < 0n ? -amount : amount;
  const scale = 10n ** BigInt(digits);
  const whole = group((magnitude / scale).toString());
  const fraction = digits === 0 ? '' : '.' + (magnitude % scale).toString().padStart(digits, '0');
  return `${sign}${whole}${fraction}${code ? ' ' + code : ''}`;
}

/** A Money object of the API (`{amount_minor, currency}`). */
export function moneyOf(value) {
  return value ? money(value.amount_minor, value.currency) : '—';
}

/** Basis points as a percentage with two decimals, by integer division:
 * 1234 → "12.34%". */
export function percentBp(basisPoints) {
  const bp = integer(basisPoints);
  if (bp === null) return '—';
  const sign = bp < 0n ? '-' : '';
  const magnitude = bp < 0n ? -bp : bp;
  return `${sign}${magnitude / 100n}.${(magnitude % 100n).toString().padStart(2, '0')}%`;
}

/** Milliseconds since the epoch as local date and time. */
export function time(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(Number(ms)).toLocaleString();
}

/** Milliseconds since the epoch as a local time of day. */
export function clock(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(Number(ms)).toLocaleTimeString();
}

/** A size in bytes, in the largest unit that keeps it at least 1. */
export function bytes(size) {
  const n = Number(size);
  if (!Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  return `${Math.round(n / (1024 * 1024))} MiB`;
}
