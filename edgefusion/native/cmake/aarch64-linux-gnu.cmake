# CMake toolchain file: cross-compile the C runtime for 64-bit ARM Linux (Jetson, most edge boards).
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64
#
# Default: Debian/Ubuntu's cross compiler and its C library
# (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross; glibc of the build machine's release).
# EF_CROSS_PREFIX: another compiler, e.g. /opt/arm/bin/aarch64-none-linux-gnu- (the compiler is <prefix>gcc).
# EF_SYSROOT: link against the device's root file system instead (e.g. a Jetson's Linux_for_Tegra/rootfs),
# so that programs need no newer glibc than the device has.
# With qemu-aarch64 installed (apt-get install qemu-user), ctest runs the built programs through it
# (CMAKE_CROSSCOMPILING_EMULATOR).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EF_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "cross compiler prefix (the C compiler is <prefix>gcc)")
set(EF_SYSROOT "" CACHE PATH "device root file system to link against; empty: the cross compiler's own C library")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EF_CROSS_PREFIX EF_SYSROOT)
set(CMAKE_C_COMPILER "${EF_CROSS_PREFIX}gcc")

if(EF_SYSROOT)
  set(CMAKE_SYSROOT "${EF_SYSROOT}")
  set(EF_TARGET_ROOT "${EF_SYSROOT}")
else()
  set(EF_TARGET_ROOT "/usr/aarch64-linux-gnu") # Debian's cross C library
endif()
set(CMAKE_FIND_ROOT_PATH "${EF_TARGET_ROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(EF_QEMU qemu-aarch64)
if(EF_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${EF_QEMU};-L;${EF_TARGET_ROOT}")
endif()
