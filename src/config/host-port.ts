// Host and port as written in config files: `green-acres`, `green-acres:7370`,
// `192.0.2.7:7370`, `[2001:db8::7]:7370`, `[::1]`. Pure code (no DNS: a name
// is checked for its shape only).

/** The port of the slave link when none is written: 7370 (unassigned by IANA). */
export const DEFAULT_PORT = 7370;

export interface HostPort {
  /** Host name, IPv4 address, or IPv6 address without its brackets. */
  host: string;
  /** TCP port; 0 only where the caller allows it (listen: any free port). */
  port: number;
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** Why a host name or IPv4 address is malformed, or undefined when it is fine. */
export function checkHostName(host: string): string | undefined {
  if (host === "") return "the host is empty";
  if (host.length > 253) return "a host name has at most 253 characters";
  if (/^[\d.]+$/.test(host)) {
    const parts = host.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
      return `${host} is not an IPv4 address`;
    }
    return undefined;
  }
  const labels = host.endsWith(".") ? host.slice(0, -1).split(".") : host.split(".");
  if (labels.some((l) => !LABEL.test(l))) {
    return "a host name holds letters, digits, '-' and '_' in dot-separated parts";
  }
  return undefined;
}

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    // The WHATWG URL parser implements the full IPv6 literal grammar.
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

export function parseHostPort(
  text: string,
  options: { defaultPort: number; allowPortZero?: boolean },
): HostPort | { why: string } {
  const t = text.trim();
  let host: string;
  let portText: string | undefined;
  if (t.startsWith("[")) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(t);
    if (m === null) return { why: "expected [IPv6 address] or [IPv6 address]:port" };
    host = m[1] ?? "";
    portText = m[2];
    if (!isIPv6(host)) return { why: `${host} is not an IPv6 address` };
  } else {
    const colons = t.split(":").length - 1;
    if (colons > 1) {
      return { why: "an IPv6 address needs brackets, e.g. [2001:db8::7]:7370" };
    }
    const at = t.indexOf(":");
    host = at < 0 ? t : t.slice(0, at);
    portText = at < 0 ? undefined : t.slice(at + 1);
    const bad = checkHostName(host);
    if (bad !== undefined) return { why: bad };
  }
  if (portText === undefined) return { host, port: options.defaultPort };
  const min = options.allowPortZero === true ? 0 : 1;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < min || Number(portText) > 65535) {
    return { why: `port ${JSON.stringify(portText)} is not a number from ${min} to 65535` };
  }
  return { host, port: Number(portText) };
}
