const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * Binary-unit size for people: "512 B", "1.5 KiB", "468.6 MiB", "1.0 GiB".
 * Bytes are whole; every larger unit has one decimal place.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${Math.round(n)} B`;
  let value = n;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < UNITS.length - 1);
  // 1023.96 MiB would print as "1024.0 MiB": carry into the next unit instead.
  if (Number(value.toFixed(1)) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** A download rate: "12.3 MiB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Time left as people say it: "45 s left", "3 min left", "1 h 5 min left". */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s left`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min left`;
  return `${Math.floor(min / 60)} h ${min % 60} min left`;
}

/** "root" -> "Root model", "sub" -> "Sub-model"; anything else is shown as given. */
export function roleLabel(role: string): string {
  switch (role) {
    case 'root':
      return 'Root model';
    case 'sub':
      return 'Sub-model';
    default:
      return role;
  }
}

/** A rejection reason as one human-readable line. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
