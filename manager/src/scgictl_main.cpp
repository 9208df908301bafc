// scgictl: controls a running scgi-manager through its control socket. Thin:
// the whole command line lives in the library (scgictl.cpp), where tests reach it.
#include <iostream>

#include "scgi/manager/scgictl.hpp"

int main(int argc, char** argv) {
  return scgi::manager::scgictl_main(argc, argv, std::cout, std::cerr,
                                     scgi::manager::process_console());
}
