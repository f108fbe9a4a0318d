# SPDX-License-Identifier: MIT
# Shipping: systemd units, tmpfiles, config, man pages, the SELinux module
# and the RPM. Included by the top-level Makefile, which defines PREFIX,
# SBINDIR, MANDIR, SYSCONFDIR, DESTDIR, VERSION and B.

UNITDIR        ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
SELINUX_PKGDIR ?= $(PREFIX)/share/selinux/packages
SELINUX_IFDIR  ?= $(PREFIX)/share/selinux/devel/include/distributed
SELINUX_DEVEL  ?= /usr/share/selinux/devel/Makefile
RPMBUILD       ?= rpmbuild

SHIP_UNITS := nodetrustd.service nodetrust-aggregator.service
SHIP_MAN   := man/nodetrustd.8 man/nodetrust-aggregator.8

# The units in systemd/ name the distribution paths (/usr/sbin, /etc); an
# install elsewhere gets them rewritten. The agent's built-in default config
# path is /etc/nodetrust/nodetrustd.conf, so another SYSCONFDIR also passes
# --config explicitly.
SHIP_SED := -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/nodetrust|$(SYSCONFDIR)/nodetrust|g'
ifneq ($(SYSCONFDIR),/etc)
SHIP_SED += -e 's|^ExecStart=\(.*\)/nodetrustd$$|ExecStart=\1/nodetrustd --config $(SYSCONFDIR)/nodetrust/nodetrustd.conf|'
endif

# The policy module is built by the reference policy's own Makefile (what
# selinux-policy-devel documents): m4 over the interface headers, then
# checkmodule -M -m and semodule_package. It works in the directory it runs
# in, so it gets a copy of the sources under $(B)/selinux. MAKEFLAGS is
# cleared so our PREFIX and friends do not leak into its tool paths.
$(B)/selinux/nodetrust.pp: selinux/nodetrust.te selinux/nodetrust.if selinux/nodetrust.fc
	@mkdir -p $(@D)
	cp $^ $(@D)/
	cd $(@D) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		make -f $(SELINUX_DEVEL) nodetrust.pp

selinux: $(B)/selinux/nodetrust.pp

# Config files are installed only when absent: a reinstall never replaces
# an administrator's settings. The SELinux module goes in only if built.
# The units are rewritten on the way in (not as a build product: their
# content depends on the install variables of this very run).
install-ship:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man8
	for u in $(SHIP_UNITS); do \
		sed $(SHIP_SED) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 systemd/nodetrust.tmpfiles $(DESTDIR)$(TMPFILESDIR)/nodetrust.conf
	install -m 0644 $(SHIP_MAN) $(DESTDIR)$(MANDIR)/man8/
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/nodetrust $(DESTDIR)$(SYSCONFDIR)/nodetrust/trust.d
	test -e $(DESTDIR)$(SYSCONFDIR)/nodetrust/nodetrustd.conf || \
		install -m 0644 etc/nodetrustd.conf $(DESTDIR)$(SYSCONFDIR)/nodetrust/nodetrustd.conf
	if [ -f $(B)/selinux/nodetrust.pp ]; then \
		install -d $(DESTDIR)$(SELINUX_PKGDIR) $(DESTDIR)$(SELINUX_IFDIR) && \
		install -m 0644 $(B)/selinux/nodetrust.pp $(DESTDIR)$(SELINUX_PKGDIR)/ && \
		install -m 0644 selinux/nodetrust.if $(DESTDIR)$(SELINUX_IFDIR)/; \
	fi

# The RPM is built from a tarball of the working tree as git sees it: every
# file that is tracked or not ignored, as it is now (so `make rpm` builds
# what `make` builds), without .gitignore'd build output. Outside a git
# checkout (an unpacked tarball), the whole tree minus build directories.
RPM_TOPDIR  := $(abspath $(B)/rpm)
RPM_SRCDIR  := nodetrust-$(VERSION)
RPM_TARBALL := $(RPM_TOPDIR)/SOURCES/$(RPM_SRCDIR).tar.gz

# _unitdir and _tmpfilesdir are systemd-rpm-macros' values, which Debian's
# rpm lacks (see the top of rpm/nodetrust.spec). The build dependencies are
# checked here too: rpmbuild --nodeps would otherwise only fail inside %build.
rpm: $(B)/.deps-build
	rm -rf $(RPM_TOPDIR)
	mkdir -p $(RPM_TOPDIR)/SOURCES
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read \
			--transform 's|^|$(RPM_SRCDIR)/|' -czf $(RPM_TARBALL); \
	else \
		tar --exclude-vcs --exclude='./build*' --transform 's|^\.|$(RPM_SRCDIR)|' \
			-czf $(RPM_TARBALL) .; \
	fi
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(RPMBUILD) -ba --nodeps \
		--define "_unitdir /usr/lib/systemd/system" \
		--define "_tmpfilesdir /usr/lib/tmpfiles.d" \
		--define "_topdir $(RPM_TOPDIR)" \
		--define "nodetrust_version $(VERSION)" \
		rpm/nodetrust.spec
	@ls $(RPM_TOPDIR)/RPMS/*/*.rpm $(RPM_TOPDIR)/SRPMS/*.rpm

.PHONY: selinux install-ship rpm
