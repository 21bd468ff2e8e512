# ecrm_proto_library(NAME <target> PROTOS <files> [DEPS <proto targets>] [GRPC])
# Call it from the directory that is the proto root: protobuf_generate names its outputs by
# the path relative to the calling CMakeLists.txt, so imports and includes then match.
# Generates C++ (and, with GRPC, service stubs) into the build tree and wraps it in a library
# aliased ecrm::<target>. Generated code is never committed.
#
# With GRPC there are two libraries: ecrm::<target>_messages (the messages alone, linking
# protobuf but not gRPC: what an engine's domain code links) and ecrm::<target> (the messages
# and the stubs, linking gRPC). Without GRPC, ecrm::<target> is the messages alone.
set(ECRM_PROTO_OUT "${PROJECT_BINARY_DIR}/gen")
file(MAKE_DIRECTORY "${ECRM_PROTO_OUT}")

function(ecrm_proto_library)
  cmake_parse_arguments(P "GRPC" "NAME" "PROTOS;DEPS" ${ARGN})
  set(P_ROOT "${CMAKE_CURRENT_SOURCE_DIR}")
  set(abs_protos)
  foreach(p IN LISTS P_PROTOS)
    list(APPEND abs_protos "${P_ROOT}/${p}")
  endforeach()
  set(messages ${P_NAME})
  if(P_GRPC)
    set(messages ${P_NAME}_messages)
  endif()
  # The messages depend on their dependencies' messages, never on their stubs.
  set(message_deps)
  foreach(dep IN LISTS P_DEPS)
    if(TARGET ${dep}_messages)
      list(APPEND message_deps ${dep}_messages)
    else()
      list(APPEND message_deps ${dep})
    endif()
  endforeach()
  add_library(${messages} STATIC ${abs_protos})
  add_library(ecrm::${messages} ALIAS ${messages})
  target_include_directories(${messages} PUBLIC "${ECRM_PROTO_OUT}")
  target_link_libraries(${messages} PUBLIC protobuf::libprotobuf ${message_deps})
  protobuf_generate(TARGET ${messages} LANGUAGE cpp
    IMPORT_DIRS "${P_ROOT}" "${PROJECT_SOURCE_DIR}/proto" PROTOC_OUT_DIR "${ECRM_PROTO_OUT}")
  if(P_GRPC)
    add_library(${P_NAME} STATIC ${abs_protos})
    add_library(ecrm::${P_NAME} ALIAS ${P_NAME})
    target_link_libraries(${P_NAME} PUBLIC ${messages} ${P_DEPS} gRPC::grpc++)
    protobuf_generate(TARGET ${P_NAME} LANGUAGE grpc
      GENERATE_EXTENSIONS .grpc.pb.h .grpc.pb.cc
      PLUGIN "protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>"
      IMPORT_DIRS "${P_ROOT}" "${PROJECT_SOURCE_DIR}/proto" PROTOC_OUT_DIR "${ECRM_PROTO_OUT}")
  endif()
endfunction()
