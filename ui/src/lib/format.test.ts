import { describe, expect, it } from 'vitest';
import { errorMessage, formatBytes, formatEta, formatRate, roleLabel } from './format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1, '1 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1048576, '1.0 MiB'],
    [491400064, '468.6 MiB'],
    [1117320768, '1.0 GiB'],
    [1073741824, '1.0 GiB'],
    [5 * 1024 ** 3 + 512 * 1024 ** 2, '5.5 GiB'],
    [1024 ** 2 - 1, '1.0 MiB'],
    [1024 ** 4, '1.0 TiB'],
  ])('formatBytes(%d) = %s', (n, expected) => {
    expect(formatBytes(n)).toBe(expected);
  });

  it('rejects nonsense without throwing', () => {
    expect(formatBytes(-1)).toBe('—');
    expect(formatBytes(Number.NaN)).toBe('—');
  });
});

describe('roleLabel', () => {
  it('names the known roles and passes others through', () => {
    expect(roleLabel('root')).toBe('Root model');
    expect(roleLabel('sub')).toBe('Sub-model');
    expect(roleLabel('judge')).toBe('judge');
  });
});

describe('errorMessage', () => {
  it('handles Errors, strings and objects', () => {
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage({ code: 3 })).toBe('{"code":3}');
  });
});

describe('download rates and time left', () => {
  it('says the rate in binary units per second and the time left in words', () => {
    expect(formatRate(12.3 * 1024 ** 2)).toBe('12.3 MiB/s');
    expect(formatEta(44.2)).toBe('45 s left');
    expect(formatEta(185)).toBe('3 min left');
    expect(formatEta(3900)).toBe('1 h 5 min left');
  });

  it('says nothing when the time left is unknown', () => {
    expect(formatEta(null)).toBe('');
    expect(formatEta(Number.POSITIVE_INFINITY)).toBe('');
  });
});
