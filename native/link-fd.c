// linkFd(fd, path): a Promise that gives the open file `fd` the name `path`,
// for a temp file created unnamed (O_TMPFILE) and named once written
// (src/storage/unnamed-files.ts). linkFd.O_TMPFILE is the open(2)
// flag as this machine's headers define it (Node's fs.constants lack it).
//
// Why C: Node has no linkat(2), and its link(2) does not follow the
// /proc/self/fd/N link to the file. This is
//   linkat(AT_FDCWD, "/proc/self/fd/<fd>", AT_FDCWD, path, AT_SYMLINK_FOLLOW)
// as open(2) documents for O_TMPFILE, run on a libuv worker thread like
// Node's own file calls. It fails as link(2) would: EEXIST when `path`
// exists, and so on; the promise is then rejected with the errno (a positive
// number), which the TypeScript side turns into Node's kind of error.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  char* path;
  int err;
} LinkWork;

static void free_work(LinkWork* w) {
  free(w->path);
  free(w);
}

static void Execute(napi_env env, void* data) {
  (void)env;
  LinkWork* w = data;
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
  w->err = linkat(AT_FDCWD, proc, AT_FDCWD, w->path, AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
}

static void Complete(napi_env env, napi_status status, void* data) {
  LinkWork* w = data;
  napi_value value;
  if (status == napi_ok && w->err == 0) {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, w->deferred, value);
  } else {
    napi_create_int32(env, status == napi_ok ? w->err : ECANCELED, &value);
    napi_reject_deferred(env, w->deferred, value);
  }
  napi_delete_async_work(env, w->work);
  free_work(w);
}

static napi_value fail(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value LinkFd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2)
    return fail(env, "linkFd(fd, path): two arguments expected");

  // A number that is a whole, non-negative int: napi_get_value_int32 alone
  // would take NaN for 0 and 3.7 for 3, and link another descriptor's file.
  napi_valuetype type;
  double number;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_double(env, argv[0], &number) != napi_ok || !(number >= 0) ||
      number > INT_MAX || number != (double)(int)number)
    return fail(env, "linkFd(fd, path): fd must be a file descriptor");

  size_t len = 0;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &len) != napi_ok)
    return fail(env, "linkFd(fd, path): path must be a string");
  LinkWork* w = calloc(1, sizeof *w);
  char* path = malloc(len + 1);
  if (w == NULL || path == NULL) {
    free(w);
    free(path);
    return fail(env, "linkFd: out of memory");
  }
  w->fd = (int)number;
  w->path = path;
  // A NUL inside the string would name another, shorter path.
  if (napi_get_value_string_utf8(env, argv[1], path, len + 1, &len) != napi_ok || len == 0 ||
      strlen(path) != len) {
    free_work(w);
    return fail(env, "linkFd(fd, path): path must be a non-empty string without NUL");
  }

  napi_value promise, name;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    free_work(w);
    return fail(env, "linkFd: cannot make a promise");
  }
  if (napi_create_string_utf8(env, "linkFd", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, Execute, Complete, w, &w->work) != napi_ok) {
    // The promise exists: settle it rather than leave it pending.
    napi_value errno_value;
    napi_create_int32(env, ENOMEM, &errno_value);
    napi_reject_deferred(env, w->deferred, errno_value);
    free_work(w);
    return promise;
  }
  if (napi_queue_async_work(env, w->work) != napi_ok) {
    napi_value errno_value;
    napi_create_int32(env, ENOMEM, &errno_value);
    napi_reject_deferred(env, w->deferred, errno_value);
    napi_delete_async_work(env, w->work);
    free_work(w);
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn, flag;
  if (napi_create_function(env, "linkFd", NAPI_AUTO_LENGTH, LinkFd, NULL, &fn) != napi_ok ||
      napi_create_int32(env, O_TMPFILE, &flag) != napi_ok ||
      napi_set_named_property(env, fn, "O_TMPFILE", flag) != napi_ok ||
      napi_set_named_property(env, exports, "linkFd", fn) != napi_ok)
    return NULL;
  return exports;
}
