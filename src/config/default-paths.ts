// Where ABS looks for its files when nothing says otherwise. A module of
// constants only: `abs` needs them to start, and loading the config modules
// for them would cost every command the time of loading the master's config
// loader (see the startup bench).

/** The master's config file (abs-master -c, $ABS_CONFIG). */
export const DEFAULT_MASTER_CONF = "/etc/abs/master.conf";
/** The slave's config file (abs-slave -c, $ABS_SLAVE_CONFIG). */
export const DEFAULT_SLAVE_CONF = "/etc/abs/slave.conf";
/** admin_socket's default. */
export const DEFAULT_ADMIN_SOCKET = "/run/abs/admin.sock";
/** abs demo's directory, relative to where abs runs. */
export const DEFAULT_DEMO_DIR = "abs-demo";
/** realm_key_file's default (masters only). */
export const DEFAULT_REALM_KEY_FILE = "/etc/abs/realm.key";
/** key_file's default: a slave's own key (abs keygen --slave). */
export const DEFAULT_SLAVE_KEY_FILE = "/etc/abs/slave.key";
