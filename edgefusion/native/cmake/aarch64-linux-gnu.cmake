# CMake toolchain file: cross-compile the C runtime for 64-bit ARM Linux (Jetson, most edge boards)
# with Debian's cross toolchain (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross).
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64
#
# Another toolchain: -DEF_CROSS_PREFIX=/opt/gcc-arm/bin/aarch64-none-linux-gnu- (compiler = PREFIXgcc)
# and -DEF_SYSROOT=/path/to/sysroot. When qemu-aarch64 is installed (apt-get install qemu-user),
# ctest and add_custom_command run the built programs through it (CMAKE_CROSSCOMPILING_EMULATOR).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EF_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "cross compiler prefix (the C compiler is <prefix>gcc)")
set(EF_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "target root with lib/ and include/ (Debian: /usr/aarch64-linux-gnu)")
set(CMAKE_C_COMPILER "${EF_CROSS_PREFIX}gcc")

set(CMAKE_FIND_ROOT_PATH "${EF_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(EF_QEMU qemu-aarch64)
if(EF_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${EF_QEMU};-L;${EF_SYSROOT}")
endif()
