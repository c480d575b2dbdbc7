// Money as the API sends it, decimal strings, and exact arithmetic on BigInt units of
// 10^-18 USD: amounts are never parsed as floating point.

const SCALE = 18;
const UNIT = 10n ** BigInt(SCALE);

/** "12.345" -> 12345000000000000000n. Digits beyond 18 places are dropped. */
export function units(text) {
  const s = String(text ?? "0").trim();
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!match) return 0n;
  const whole = BigInt(match[2] || "0");
  const fraction = BigInt(((match[3] || "") + "0".repeat(SCALE)).slice(0, SCALE));
  const value = whole * UNIT + fraction;
  return match[1] === "-" ? -value : value;
}

/** The exact decimal string of an amount, without trailing zeros. */
export function exact(amount) {
  const negative = amount < 0n;
  const abs = negative ? -amount : amount;
  const whole = abs / UNIT;
  const fraction = (abs % UNIT).toString().padStart(SCALE, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

export function sum(values) {
  return values.reduce((total, v) => total + (typeof v === "bigint" ? v : units(v)), 0n);
}

/**
 * For people: cents from $1 up, up to six places below (eval requests cost fractions of a
 * cent), rounded half up. The exact value goes in the element's title and data-exact.
 */
export function usd(value) {
  const amount = typeof value === "bigint" ? value : units(value);
  const negative = amount < 0n;
  const abs = negative ? -amount : amount;
  const places = abs >= UNIT || abs === 0n ? 2 : 6;
  const step = 10n ** BigInt(SCALE - places);
  const rounded = (abs + step / 2n) / step;
  const whole = rounded / 10n ** BigInt(places);
  let fraction = (rounded % 10n ** BigInt(places)).toString().padStart(places, "0");
  if (places > 2) fraction = fraction.replace(/0+$/, "").padEnd(2, "0");
  return `${negative ? "-" : ""}$${whole.toLocaleString("en-US")}.${fraction}`;
}

/** a / b as a number in [0, 1] for drawing (bar widths); never used for money. */
export function share(part, whole) {
  if (whole <= 0n || part <= 0n) return 0;
  if (part >= whole) return 1;
  return Number((part * 1000000n) / whole) / 1000000;
}
