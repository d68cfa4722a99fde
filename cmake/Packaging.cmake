# Packaging.cmake - the Debian package of ckptfs, made by CPack
# (scripts/package.sh builds it: cpack -G DEB in a fresh build directory).
#
# ckptfs_<version>_<arch>.deb holds what 'cmake --install' installs under
# /usr: bin/ckptfs, bin/ckpt, the man pages ckptfs(1) and ckpt(1) (gzipped
# as Debian policy wants, by cmake/DebGzipMan.cmake) and the bash
# completion of ckpt.  Depends: fuse3 (fusermount3, which unmounts, and
# mount.fuse3, which mounts from fstab) and what dpkg-shlibdeps finds the
# binaries linked against (libc6, libfuse3-3, libssl3, libjansson4,
# libisal2).  Included from
# CMakeLists.txt after the install rules.

set(CKPT_DEB_MAINTAINER
    "ckptfs maintainers <maintainers@users.noreply.h-seed-025a602d.example>"
    CACHE STRING "The Maintainer field of the Debian package")
set(CKPT_HOMEPAGE "" CACHE STRING
    "The Homepage field of the Debian package (none if empty)")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ckptfs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${CKPT_DEB_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "mount MindSpore checkpoints as directories (FUSE)")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # ckptfs_0.3.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${CKPT_DEB_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
if(CKPT_HOMEPAGE)
  set(CPACK_DEBIAN_PACKAGE_HOMEPAGE ${CKPT_HOMEPAGE})
endif()
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"ckptfs shows a MindSpore checkpoint (.ckpt) as a directory: every
parameter is a file holding the tensor's raw bytes, with its dtype and
shape as extended attributes. Weights can be read with ls, cat, od or
numpy.memmap and edited with dd, cp, mv, rm and setfattr; the edits are
written back atomically as a new checkpoint on fsync and at unmount, in
the byte format MindSpore writes. Encrypted (AES-GCM, AES-CBC, SM4-CBC)
and CRC-protected checkpoints are supported.

The ckpt tool lists, dumps, verifies and converts (encrypts, decrypts,
re-keys) checkpoints without mounting, and commits and unmounts ckptfs
mounts, reporting whether the commit worked.")
# The binaries' libraries, from dpkg-shlibdeps (dpkg-dev), after fuse3.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS fuse3)
set(CPACK_STRIP_FILES ON)
# Every file is a plain file under /usr, owned by root: no maintainer
# scripts, no conffiles.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/DebGzipMan.cmake)

include(CPack)
