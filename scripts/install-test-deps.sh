#!/bin/sh
# Installs the Debian packages the integration tests run as real servers, when any is missing:
# mosquitto, influxdb (1.x), snmpd + snmp (Net-SNMP agent and command-line tools), postgresql,
# iputils-ping + traceroute (run by the agent's network-tool commands), openssl (test certificates).
# As root it installs them with apt-get; otherwise it stops and names what to install.
set -eu

missing=""
need() { # need <package> <binary>...
  pkg=$1; shift
  for bin in "$@"; do
    if [ ! -x "$bin" ] && ! command -v "$bin" >/dev/null 2>&1; then
      missing="$missing $pkg"
      return
    fi
  done
}
need mosquitto /usr/sbin/mosquitto
need influxdb /usr/bin/influxd
need snmpd /usr/sbin/snmpd
need snmp snmpget snmpwalk snmptrap
need iputils-ping /usr/bin/ping
need traceroute /usr/bin/traceroute
need openssl /usr/bin/openssl
pg_initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_initdb" ] || missing="$missing postgresql"

if [ -z "$missing" ]; then
  echo "test servers present: mosquitto influxdb snmpd snmp postgresql iputils-ping traceroute openssl"
  exit 0
fi

if [ "$(id -u)" != "0" ]; then
  echo "polyfleet tests need these Debian packages:$missing" >&2
  echo "install them with: sudo apt-get install -y$missing" >&2
  exit 1
fi

echo "installing test servers:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' own services are not wanted: tests start their own servers on ephemeral loopback ports.
# policy-rc.d keeps package post-install scripts from starting daemons where an init system exists.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
