// Which slave names a Kerberos principal may use. With a realm key the name
// is what the slave proved knowledge of the key under (the MAC covers it);
// with Kerberos the hello name is only claimed, so the principal must vouch
// for it, or one host's keytab could report another host's jobs. Pure code.
//
// A name is vouched for only by a host's own principal, `<service>/<fqdn>`
// of the master's realm (service `host` unless slave_principal_service says
// otherwise), whose host is the name or whose first label is:
//
//   host/green-acres.example.com@REALM   may be "green-acres.example.com" or "green-acres"
//   HTTP/green-acres.example.com@REALM   may be none: another service's key (a web
//                                        server's keytab) is not the host's
//   alice/green-acres@REALM              may be none: a user's instance
//   green-acres@REALM                    may be none: a user
//
// or by the principal master.conf maps the name to (slave_principal.NAME),
// which is then the only one that may use it.

import { realmOf } from "./kerberos.js";

export interface SlaveNamePolicy {
  /** The service of slave principals (`slave_principal_service`). */
  service: string;
  /** The master's realm. */
  realm: string;
  /** Slave name → the principal (`name@REALM`) that alone may use it (`slave_principal.NAME`). */
  map: Readonly<Record<string, string>>;
}

/** Returns null when `principal` may use `name` under `policy`, else why not. */
export function principalMayUseName(
  principal: string,
  name: string,
  policy: SlaveNamePolicy,
): string | null {
  const mapped = policy.map[name];
  if (mapped !== undefined) {
    if (mapped === principal) return null;
    return `slave name "${name}" belongs to principal ${mapped} (slave_principal.${name} in master.conf), not to ${principal}`;
  }
  const realm = realmOf(principal);
  const bare = realm === undefined ? principal : principal.slice(0, -(realm.length + 1));
  const parts = bare.split("/");
  const [service, host] = parts;
  if (realm !== policy.realm || parts.length !== 2 || service !== policy.service || !host) {
    return (
      `principal ${principal} may register under no slave name: only a host's principal ` +
      `${policy.service}/<host>@${policy.realm} names a slave (its host, or the host's first label), ` +
      `or a slave_principal.NAME entry in master.conf`
    );
  }
  const allowed = [host];
  const label = host.split(".")[0];
  if (label !== undefined && label !== "" && label !== host) allowed.push(label);
  if (allowed.some((a) => a.toLowerCase() === name.toLowerCase())) return null;
  return `principal ${principal} may register as ${allowed.map((a) => `"${a}"`).join(" or ")}, not "${name}"`;
}
