# Included by llama.cpp's tools/server/CMakeLists.txt through LLAMA_SERVER_EXTRA_CMAKE
# (patches/llama-server-sampler-registry.patch; scripts/build_server.sh sets it):
# compiles our samplers and their registration into llama-server, with the
# flags of our own library, against the llama.cpp being built (one libllama).
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/llama_simplex_sources.cmake)

# An object library: its objects are linked into the program as they are, so
# register.cpp's static registration is kept (a static archive would drop it).
add_library(llama_simplex_server OBJECT ${LLAMA_SIMPLEX_SOURCES} ${CMAKE_CURRENT_LIST_DIR}/register.cpp)
llama_simplex_compile_flags(llama_simplex_server)
target_include_directories(llama_simplex_server PRIVATE ${LLAMA_SIMPLEX_ROOT}/cpp/src)
# llama.h, common/sampling.h and nlohmann/json.hpp
target_link_libraries(llama_simplex_server PRIVATE llama-common)
target_link_libraries(llama-server PRIVATE llama_simplex_server)
