RT_UNIT_SUITE(common)
