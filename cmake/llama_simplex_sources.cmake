# The native library's sources and compile flags, shared by our CMakeLists.txt
# (the Python package's libllama_simplex) and cpp/server/llama-server.cmake
# (the same sources compiled into llama.cpp's llama-server).
get_filename_component(LLAMA_SIMPLEX_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# Like llama.cpp's GGML_NATIVE: the code is built on the machine that runs it.
option(LLAMA_SIMPLEX_NATIVE "Compile the kernels for this machine's CPU (-march=native)" ON)

set(LLAMA_SIMPLEX_SOURCES
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/simplex.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/samplers.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/backend_sampling.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/power_chain.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/generate.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/solver.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/rollout.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/multi_sample.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/power.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/mcmc.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/smc.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/smc_chain.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/specs.cpp
    ${LLAMA_SIMPLEX_ROOT}/cpp/src/c_api.cpp)

function(llama_simplex_compile_flags target)
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${LLAMA_SIMPLEX_ROOT}/cpp/include>)
    target_compile_options(${target} PRIVATE -O3 -fno-math-errno -fno-trapping-math -fopenmp-simd -Wall -Wextra)
    if(LLAMA_SIMPLEX_NATIVE)
        target_compile_options(${target} PRIVATE -march=native)
        # The solver's exp passes gain ~15% from full-width AVX-512 where the CPU has it.
        set_source_files_properties(${LLAMA_SIMPLEX_ROOT}/cpp/src/solver.cpp PROPERTIES
            COMPILE_OPTIONS "-mprefer-vector-width=512")
    endif()
endfunction()
