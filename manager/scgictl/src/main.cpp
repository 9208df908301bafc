// scgictl: controls a running scgi-manager through its control socket. Thin:
// the whole command line lives in the library (scgictl.cpp), where tests reach it.
#include <iostream>

#include "scgictl.hpp"

int main(int argc, char** argv) {
  return scgi::ctl::scgictl_main(argc, argv, std::cout, std::cerr, scgi::ctl::process_console());
}
