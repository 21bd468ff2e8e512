# ecrm_library(<name> SOURCES ... DEPS ...): libs/<name>, public headers in include/ecrm/<name>/.
function(ecrm_library name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS" ${ARGN})
  add_library(ecrm_${name} STATIC ${L_SOURCES})
  add_library(ecrm::${name} ALIAS ecrm_${name})
  target_include_directories(ecrm_${name} PUBLIC "${CMAKE_CURRENT_SOURCE_DIR}/include")
  target_link_libraries(ecrm_${name} PUBLIC ${L_DEPS} PRIVATE ecrm_warnings)
endfunction()

# ecrm_service(<engine> SOURCES ... DEPS ...): the ecrm-<engine> binary.
function(ecrm_service engine)
  cmake_parse_arguments(S "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(ecrm-${engine} ${S_SOURCES})
  target_link_libraries(ecrm-${engine} PRIVATE ecrm::server ${S_DEPS} ecrm_warnings)
  install(TARGETS ecrm-${engine} RUNTIME DESTINATION bin)
endfunction()
