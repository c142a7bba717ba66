// tests/test_main.cpp — doctest's main for every test executable (one per tests/<folder>/).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
