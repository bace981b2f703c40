#!/bin/sh
# The packaged unit on stdout: dist/anycastd.service with /usr/bin/anycastd, the system user
# anycastd and the capabilities that user needs uncommented, and the install notes removed.
# Used by dist/debian/build.sh, and by tests/systemd.rs to run the daemon as the unit would.
set -eu
cd "$(dirname "$0")/../.."
sed -e 's#/usr/local/bin/anycastd#/usr/bin/anycastd#g' \
    -e 's/^#User=anycastd/User=anycastd/' -e 's/^#Group=anycastd/Group=anycastd/' \
    -e 's/^#SupplementaryGroups=/SupplementaryGroups=/' \
    -e 's/^#AmbientCapabilities=/AmbientCapabilities=/' \
    -e 's/^# needs no capability of its own as root. To run as a non-root user instead, put it in FRR.s$/# runs as the system user anycastd, in FRR'"'"'s/' \
    -e 's/^# "frrvty" group (vtysh needs it) and, for BIRD, in group "bird", and uncomment:$/# "frrvty" group (vtysh needs it) and BIRD'"'"'s "bird" group (its control socket):/' \
    -e '/^# anycastd under systemd/,/^#   systemctl daemon-reload/d' \
    dist/anycastd.service
