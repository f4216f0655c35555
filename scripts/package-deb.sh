#!/usr/bin/env bash
# npm run package:deb: builds dist-deb/abs_VERSION_ARCH.deb from the built
# tree (npm run build first; `npm ci` does it) with dpkg-deb, as root or
# not (--root-owner-group). The layout, and why, is in packaging/debian/
# README.Debian; lintian checks the result (.ci/run).
#
#   /usr/lib/abs/            dist/bin, dist/src, native/build/Release/*.node,
#                            the runtime node_modules, package.json
#   /usr/bin/abs             the admin command (members of abs-admin run it)
#   /usr/sbin/abs-master     the daemons: Debian's FHS puts programs only the
#   /usr/sbin/abs-slave      system and its admin run in /usr/sbin
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

for f in dist/bin/abs.js dist/bin/abs-master.cjs dist/bin/abs-slave.js; do
  [ -f "$f" ] || { echo "package-deb: $f is missing: run npm run build first" >&2; exit 1; }
done
for f in native/build/Release/lstat_names.node native/build/Release/link_fd.node; do
  # The package must not fall back to the slower paths: build them here.
  [ -f "$f" ] || { echo "package-deb: $f is missing: npm run build:native needs python3, make and g++" >&2; exit 1; }
done

version="$(node -p 'require("./package.json").version')-1"
arch=$(dpkg --print-architecture)
maintainer="ABS maintainers <maintainers@users.noreply.h-seed-405dd44f.example>"
out=$repo/dist-deb
mkdir -p "$out"
rm -f "$out"/abs_*.deb
# The tree is staged outside the clone, so that lint and prettier never
# see a second copy of the JavaScript.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root/DEBIAN"

lib=$root/usr/lib/abs
mkdir -p "$lib/dist" "$lib/native/build/Release"
# The built JavaScript without tests, benchmarks and source maps.
(cd dist && tar --exclude='*.map' -cf - bin src) | (cd "$lib/dist" && tar -xf -)
cp native/build/Release/lstat_names.node native/build/Release/link_fd.node "$lib/native/build/Release/"
node -e '
  const p = require("./package.json");
  for (const k of ["scripts", "devDependencies", "allowScripts", "man", "files"]) delete p[k];
  process.stdout.write(JSON.stringify(p, null, 2) + "\n");
' > "$lib/package.json"

# The runtime dependencies, as npm installed them (the kerberos addon
# built): what `npm ls --omit=dev` lists, each package without its nested
# node_modules (those it needs are listed too).
npm ls --omit=dev --all --parseable | tail -n +2 | sort -u > "$stage/runtime-packages"
while read -r dir; do
  rel=${dir#"$repo"/}
  mkdir -p "$lib/$rel"
  (cd "$dir" && tar --exclude=./node_modules -cf - .) | (cd "$lib/$rel" && tar -xf -)
done < "$stage/runtime-packages"
[ -f "$lib/node_modules/kerberos/build/Release/kerberos.node" ] ||
  { echo "package-deb: node_modules/kerberos/build/Release/kerberos.node is missing (npm ci builds it with libkrb5-dev)" >&2; exit 1; }

# copyright (before the license files go): ABS's, then one paragraph per
# bundled package, with the license texts they ship.
"$repo/scripts/deb-copyright.js" "$lib/node_modules" > "$stage/copyright"

# What only development uses: docs (ours are in /usr/share/doc), types,
# sources of the addon, build leftovers, editor and VCS files.
find "$lib/node_modules" \( -iname 'readme*' -o -iname 'changelog*' -o -iname 'history.md' \
  -o -iname 'license*' -o -iname 'licence*' -o -name '*.md' -o -name '*.d.ts' -o -name '*.d.mts' \
  -o -name '*.d.cts' -o -name '*.map' -o -name '.*' -o -name '*.gyp' -o -name '*.gypi' \
  -o -name 'Makefile' -o -name '*.mk' -o -name '*.html' -o -name 'CopyrightNotice.txt' \
  -o \( -type d \( -name test -o -name tests \) \) \) -prune -exec rm -rf {} +
rm -rf "$lib/node_modules/kerberos/src" "$lib/node_modules/kerberos/build/Release/obj.target" \
  "$lib/node_modules/kerberos/build/Release/.deps"
find "$lib/node_modules/kerberos/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$lib/node_modules/kerberos/build/Release" -mindepth 1 ! -name kerberos.node -exec rm -rf {} +
find "$lib" -type d -empty -delete

# Modes: directories 0755, files 0644, the three commands 0755; the addons
# stripped as Debian ships shared objects.
find "$root" -type d -exec chmod 0755 {} +
find "$lib" -type f -exec chmod 0644 {} +
chmod 0755 "$lib/dist/bin/abs.js" "$lib/dist/bin/abs-master.cjs" "$lib/dist/bin/abs-slave.js"
# A bundled package's scripts stay runnable, as npm left them.
find "$lib/node_modules" -type f -name '*.js' -exec sh -c 'head -c2 "$1" | grep -q "#!"' _ {} \; -exec chmod 0755 {} +
find "$lib" -name '*.node' -exec strip --strip-unneeded --remove-section=.comment --remove-section=.note {} +

mkdir -p "$root/usr/bin" "$root/usr/sbin"
ln -s ../lib/abs/dist/bin/abs.js "$root/usr/bin/abs"
ln -s ../lib/abs/dist/bin/abs-master.cjs "$root/usr/sbin/abs-master"
ln -s ../lib/abs/dist/bin/abs-slave.js "$root/usr/sbin/abs-slave"

for page in man/*.[0-9]; do
  section=${page##*.}
  mkdir -p "$root/usr/share/man/man$section"
  gzip -9n < "$page" > "$root/usr/share/man/man$section/$(basename "$page").gz"
done

install -D -m 0644 etc/abs-master.service "$root/lib/systemd/system/abs-master.service"
install -D -m 0644 etc/abs-slave.service "$root/lib/systemd/system/abs-slave.service"
install -D -m 0644 packaging/debian/tmpfiles.conf "$root/usr/lib/tmpfiles.d/abs.conf"
install -D -m 0644 packaging/debian/master.conf "$root/etc/abs/master.conf"
install -D -m 0644 packaging/debian/slave.conf "$root/etc/abs/slave.conf"
install -d -m 0755 "$root/etc/abs/jobs.d"
install -D -m 0644 packaging/debian/logrotate "$root/etc/logrotate.d/abs"

doc=$root/usr/share/doc/abs
install -D -m 0644 packaging/debian/README.Debian "$doc/README.Debian"
install -m 0644 "$stage/copyright" "$doc/copyright"
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" packaging/debian/changelog |
  gzip -9n > "$doc/changelog.Debian.gz"
install -D -m 0644 etc/master.conf "$doc/examples/master.conf"
install -D -m 0644 etc/slave.conf "$doc/examples/slave.conf"
install -d -m 0755 "$doc/examples/jobs.d"
install -m 0644 etc/jobs.d/*.conf "$doc/examples/jobs.d/"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/abs"

for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"

# The shared libraries the addons link, as dpkg-shlibdeps finds them (it
# wants a debian/control to read).
shlibs_dir=$stage/shlibs
mkdir -p "$shlibs_dir/debian"
printf 'Source: abs\n\nPackage: abs\nArchitecture: any\n' > "$shlibs_dir/debian/control"
mapfile -t objects < <(find "$lib" -name '*.node')
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "${objects[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlibs_dir"
[ -n "$shlibs" ] || { echo "package-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }

(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@MAINTAINER@/$maintainer/" \
  -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" packaging/debian/control > "$root/DEBIAN/control"

deb=$out/abs_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
