// Browser stand-in for node:net's isIP, for the page's bundle (config validation, address
// normalisation). Same answers as Node's for the address texts a config or truth file holds;
// test/library.test.ts compares the two over valid and invalid forms.

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(s: string): boolean {
  const pct = s.indexOf('%');
  if (pct >= 0) {
    if (!/^[0-9A-Za-z.:-]+$/.test(s.slice(pct + 1))) return false;
    s = s.slice(0, pct);
  }
  let groups = 8;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = s.split('::');
  if (halves.length > 2) return false;
  const hex = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  if (halves.length === 1) {
    const g = s.split(':');
    return g.length === groups && g.every(hex);
  }
  const left = halves[0] === '' ? [] : halves[0].split(':');
  const right = halves[1] === '' ? [] : halves[1].split(':');
  if (![...left, ...right].every(hex)) return false;
  return left.length + right.length <= groups - 1;
}

export function isIP(s: string): 0 | 4 | 6 {
  if (typeof s !== 'string') return 0;
  if (isIPv4(s)) return 4;
  if (isIPv6(s)) return 6;
  return 0;
}

export function isIPv4Addr(s: string): boolean {
  return isIP(s) === 4;
}
