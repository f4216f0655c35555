{
  "targets": [
    {
      "target_name": "lstat_names",
      "sources": ["lstat-names.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"]
    },
    {
      "target_name": "link_fd",
      "sources": ["link-fd.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"]
    }
  ]
}
