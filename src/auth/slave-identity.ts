// Which slave names a Kerberos principal may use. With a realm key the name
// is what the slave proved knowledge of the key under (the MAC covers it);
// with Kerberos the hello name is only claimed, so the principal must vouch
// for it, or one host's keytab could report another host's jobs.
//
//   host/green-acres.example.com@REALM   may be "green-acres.example.com" or "green-acres"
//   abs-slave/green-acres@REALM          may be "green-acres"  (any service/host form)
//   green-acres@REALM                    may be "green-acres"

/** Returns null when `principal` may use `name`, else why not. */
export function principalMayUseName(principal: string, name: string): string | null {
  const at = principal.lastIndexOf("@");
  const bare = at < 0 ? principal : principal.slice(0, at);
  const slash = bare.indexOf("/");
  const allowed: string[] = [];
  if (slash < 0) {
    allowed.push(bare);
  } else {
    const host = bare.slice(slash + 1);
    allowed.push(host);
    const label = host.split(".")[0];
    if (label !== undefined && label !== host) allowed.push(label);
  }
  if (allowed.some((a) => a.toLowerCase() === name.toLowerCase())) return null;
  return `principal ${principal} may register as ${allowed.map((a) => `"${a}"`).join(" or ")}, not "${name}"`;
}
