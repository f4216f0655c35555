// lstatNames(dir, names): the lstat of every name in one directory, for the
// scan of a tar backup (src/slave/methods/lstat-names.ts).
//
// Why C: the scan lstats every path of the tree, and most of an incremental
// backup's time is those lstats. From JavaScript each one is a whole path
// resolved again from "/", plus a Stats object; here the directory is opened
// once and each name is an fstatat relative to it, with the numbers written
// into one Float64Array. On the benchmark's tree of 10,000 files this is
// about 15 ms against 24 ms. Nothing else is done here: reading the
// directory, the order, the excludes and the errors stay in TypeScript.
//
// The result holds FIELDS numbers per name, in the order of `names`:
//   st_mode, st_size, mtime in whole milliseconds (as Math.floor of Node's
//   mtimeMs), errno (0 when the lstat succeeded; the other fields are then 0).
// If the directory itself cannot be opened, every name carries that errno.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIELDS 4

// Linux names are at most NAME_MAX bytes; one more for the NUL, and one more
// so that a longer string is seen as too long rather than cut short.
#define NAME_BUFFER (NAME_MAX + 2)

static napi_value fail(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value LstatNames(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2)
    return fail(env, "lstatNames(dir, names): two arguments expected");

  size_t dir_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &dir_len) != napi_ok)
    return fail(env, "lstatNames: dir must be a string");
  bool is_array = false;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array)
    return fail(env, "lstatNames: names must be an array of strings");
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok)
    return fail(env, "lstatNames: names must be an array of strings");

  napi_value buffer;
  void* data = NULL;
  if (napi_create_arraybuffer(env, (size_t)count * FIELDS * sizeof(double), &data, &buffer) !=
      napi_ok)
    return NULL;
  napi_value result;
  if (napi_create_typedarray(env, napi_float64_array, (size_t)count * FIELDS, buffer, 0,
                             &result) != napi_ok)
    return NULL;
  double* out = data;
  for (size_t i = 0; i < (size_t)count * FIELDS; i++) out[i] = 0;

  char* dir = malloc(dir_len + 1);
  if (dir == NULL) return fail(env, "lstatNames: out of memory");
  napi_get_value_string_utf8(env, argv[0], dir, dir_len + 1, NULL);
  int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int open_errno = dir_fd < 0 ? errno : 0;
  free(dir);

  char name[NAME_BUFFER];
  for (uint32_t i = 0; i < count; i++) {
    double* f = out + (size_t)i * FIELDS;
    napi_value element;
    size_t name_len = 0;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok ||
        napi_get_value_string_utf8(env, element, name, sizeof name, &name_len) != napi_ok) {
      if (dir_fd >= 0) close(dir_fd);
      return fail(env, "lstatNames: names must be an array of strings");
    }
    if (open_errno != 0) {
      f[3] = open_errno;
      continue;
    }
    if (name_len > NAME_MAX) {
      f[3] = ENAMETOOLONG;
      continue;
    }
    // A name from readdir never holds "/" or NUL: refuse one that does,
    // rather than stat another path than the one asked.
    if (name_len == 0 || memchr(name, '/', name_len) != NULL || strlen(name) != name_len) {
      f[3] = EINVAL;
      continue;
    }
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      f[3] = errno;
      continue;
    }
    f[0] = st.st_mode;
    f[1] = (double)st.st_size;
    // The same arithmetic as Node's mtimeMs, so the floor is the same.
    f[2] = floor((double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6);
  }
  if (dir_fd >= 0) close(dir_fd);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "lstatNames", NAPI_AUTO_LENGTH, LstatNames, NULL, &fn) !=
          napi_ok ||
      napi_set_named_property(env, exports, "lstatNames", fn) != napi_ok)
    return NULL;
  return exports;
}
