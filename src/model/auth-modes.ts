// How a slave authenticates to the master: what the configs name in `auth =`
// and what `hello` carries. It lives here, below both src/config and
// src/protocol, so that neither imports the other for it.

export const AUTH_MODES = ["realm-key", "kerberos"] as const;
export type AuthMode = (typeof AUTH_MODES)[number];
