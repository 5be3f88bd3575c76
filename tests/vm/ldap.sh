# shellcheck shell=bash
# The LDAP directory of the fleet scenarios (22-ldap-plans, 23-ldap-outage), sourced by them after lib.sh and
# assert.sh: slapd in the guest with posixAccount customers and posixGroup plan groups, SSSD as
# the NSS source (the image ships both disabled, see packages-apt.txt).
#
# Directory dc=example,dc=test (slapd on ldap://127.0.0.1 and ldapi:///, anonymous read,
# root manages it over ldapi with SASL EXTERNAL):
#   ou=people   dana (3001), erin (3002), frank (3003): posixAccount, primary posixGroup of
#               the same name; bulk0001..bulk5000 (4001..): posixAccount, no login
#   ou=groups   plan-gold (3500): memberUid dana        -> profile gold in the config
#               plan-bulk (3501): memberUid bulk0001..bulk5000 and frank (5,001 members)
# Local (not LDAP): the fixture's carol (group admins, exempt) and root.
# SSSD: one domain, rfc2307, plain LDAP with StartTLS switched off explicitly (SSSD 2.10 on
# Debian 13 asks for StartTLS by default, and a plain directory then leaves it offline).

LDAP_BASE="dc=example,dc=test"
LDAP_BULK=${LDAP_BULK:-5000}

# The config lines of the fleet scenarios: appended to the fixture's [groups] section.
LDAP_CONFIG_EXTRA='plan-gold = "gold"
plan-bulk = "bulk"

[profiles.gold]
"pids.max" = 300
"memory.max" = "320M"

[profiles.bulk]
"pids.max" = 250'

# ldap_setup: (re)creates the directory and SSSD's config, starts both, waits until SSSD
# resolves dana; writes the fixture config with the plans. Idempotent within one boot.
ldap_setup() {
    vm_write_config "$LDAP_CONFIG_EXTRA"
    vm_root "$(cat <<EOS
set -e
if [ ! -f /run/pamcg-ldap-ready ]; then
    systemctl stop sssd slapd 2>/dev/null || true
    rm -rf /etc/ldap/slapd.d /var/lib/ldap /var/lib/sss/db/*
    install -d -m 750 -o openldap -g openldap /etc/ldap/slapd.d /var/lib/ldap
    install -d -m 755 -o openldap -g openldap /var/run/slapd
    moddir=\$(dirname "\$(find /usr/lib -name 'back_mdb.so*' | head -n 1)")
    cat > /root/ldap-config.ldif <<EOT
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: /var/run/slapd/slapd.pid
olcArgsFile: /var/run/slapd/slapd.args

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: \$moddir
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: unlimited

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $LDAP_BASE
olcDbDirectory: /var/lib/ldap
olcDbMaxSize: 268435456
olcDbIndex: objectClass eq
olcDbIndex: uid,memberUid,cn eq
olcDbIndex: uidNumber,gidNumber eq
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * read
EOT
    slapadd -n0 -F /etc/ldap/slapd.d -l /root/ldap-config.ldif
    {
        printf 'dn: $LDAP_BASE\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n\n'
        printf 'dn: ou=people,$LDAP_BASE\nobjectClass: organizationalUnit\nou: people\n\n'
        printf 'dn: ou=groups,$LDAP_BASE\nobjectClass: organizationalUnit\nou: groups\n\n'
        for spec in dana:3001 erin:3002 frank:3003; do
            u=\${spec%:*}; id=\${spec#*:}
            printf 'dn: uid=%s,ou=people,$LDAP_BASE\nobjectClass: account\nobjectClass: posixAccount\nuid: %s\ncn: %s\nuidNumber: %s\ngidNumber: %s\nhomeDirectory: /home/%s\nloginShell: /bin/bash\n\n' \$u \$u \$u \$id \$id \$u
            printf 'dn: cn=%s,ou=groups,$LDAP_BASE\nobjectClass: posixGroup\ncn: %s\ngidNumber: %s\n\n' \$u \$u \$id
        done
        printf 'dn: cn=plan-gold,ou=groups,$LDAP_BASE\nobjectClass: posixGroup\ncn: plan-gold\ngidNumber: 3500\nmemberUid: dana\n\n'
        seq -f 'bulk%04g' 1 $LDAP_BULK | awk -v base='$LDAP_BASE' '{ n = NR + 4000;
            printf "dn: uid=%s,ou=people,%s\nobjectClass: account\nobjectClass: posixAccount\nuid: %s\ncn: %s\nuidNumber: %d\ngidNumber: 3501\nhomeDirectory: /nonexistent\nloginShell: /usr/sbin/nologin\n\n", \$1, base, \$1, \$1, n }'
        printf 'dn: cn=plan-bulk,ou=groups,$LDAP_BASE\nobjectClass: posixGroup\ncn: plan-bulk\ngidNumber: 3501\nmemberUid: frank\n'
        seq -f 'memberUid: bulk%04g' 1 $LDAP_BULK
        printf '\n'
    } > /root/ldap-data.ldif
    slapadd -q -n1 -F /etc/ldap/slapd.d -l /root/ldap-data.ldif
    chown -R openldap:openldap /etc/ldap/slapd.d /var/lib/ldap
    install -d -m 755 /etc/sssd
    cat > /etc/sssd/sssd.conf <<EOT
[sssd]
services = nss
domains = example

[domain/example]
id_provider = ldap
auth_provider = none
ldap_uri = ldap://127.0.0.1
ldap_search_base = $LDAP_BASE
ldap_schema = rfc2307
# Plain LDAP in the test VM: SSSD 2.10 (Debian 13) uses StartTLS unless told not to.
ldap_id_use_start_tls = false
# How fast an offline SSSD tries the directory again (default 60 s).
offline_timeout = 5
EOT
    # SSSD 2.10 (Debian 13) runs as user sssd and reads root:sssd 0640; 2.8 (Debian 12) runs
    # as root and refuses anything but root:root 0600 ("File ownership and permissions check
    # failed").
    if dpkg --compare-versions "\$(dpkg-query -W -f='\${Version}' sssd-common)" ge 2.10; then
        chown root:sssd /etc/sssd/sssd.conf; chmod 640 /etc/sssd/sssd.conf
    else
        chown root:root /etc/sssd/sssd.conf; chmod 600 /etc/sssd/sssd.conf
    fi
    for spec in dana:3001 erin:3002 frank:3003; do
        u=\${spec%:*}; id=\${spec#*:}
        install -d -m 755 -o \$id -g \$id /home/\$u
        install -d -m 700 -o \$id -g \$id /home/\$u/.ssh
        install -m 600 -o \$id -g \$id /root/.ssh/authorized_keys /home/\$u/.ssh/authorized_keys
    done
    touch /run/pamcg-ldap-ready
fi
systemctl start slapd
systemctl start sssd
for i in \$(seq 1 60); do
    ldapsearch -x -H ldap://127.0.0.1 -b '$LDAP_BASE' -LLL '(uid=dana)' dn >/dev/null 2>&1 && break
    sleep 1
done
for i in \$(seq 1 60); do
    getent passwd dana >/dev/null && break
    sleep 1
done
getent passwd dana
EOS
)" >/dev/null || fail "the LDAP directory or SSSD did not come up (see the transcript)"
}

# ldap_modify LDIF-TEXT: change the directory as its manager (root over ldapi, SASL EXTERNAL).
ldap_modify() {
    local tmp
    tmp=$(mktemp "$VM_TMP/ldif.XXXXXX")
    printf '%s\n' "$1" >"$tmp"
    tlog_block "ldapmodify" "$tmp"
    VM_STDIN=$tmp vm_root "ldapmodify -Q -Y EXTERNAL -H ldapi:/// >/dev/null" || { rm -f "$tmp"; fail "ldapmodify failed"; }
    rm -f "$tmp"
}

# ldap_show FILTER ATTRS...: the entries as the directory has them (into the transcript).
ldap_show() {
    vm_root "ldapsearch -x -H ldap://127.0.0.1 -b '$LDAP_BASE' -LLL '$1' ${*:2}"
}

# ldap_teardown: stop SSSD and slapd, so that the scenarios after these run with the image's
# NSS as before (nss_sss answers UNAVAIL at once, after files found the local users).
ldap_teardown() {
    # By uid: `pkill -u erin` would make SSSD look erin up, and 21-ldap-outage needs her never
    # cached.
    vm_root "pkill -KILL -u 3001,3002,3003 2>/dev/null || true
             systemctl stop sssd slapd 2>/dev/null || true" >/dev/null || true
}
