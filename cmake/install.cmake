# The installed package: `cmake --install` puts the libraries, the headers
# (under include/attncheck/, with their own relative paths) and
# attncheckConfig.cmake in place. An outside project does
#   find_package(attncheck REQUIRED)
#   target_link_libraries(my_test PRIVATE attncheck::attncheck)
# and includes <attncheck/attncheck.hpp> (examples/own_kernel/).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(attncheck_installed_libs attncheck_core attncheck_engine attncheck_model attncheck_properties)
if(ATTNCHECK_HAVE_CUDA)
  list(APPEND attncheck_installed_libs attncheck_cuda)
endif()

# The one target users link: the property suite and everything below it.
add_library(attncheck_api INTERFACE)
target_link_libraries(attncheck_api INTERFACE attncheck_properties)
target_include_directories(attncheck_api INTERFACE $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                                   $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(attncheck_api PROPERTIES EXPORT_NAME attncheck)
add_library(attncheck::attncheck ALIAS attncheck_api)

# Headers only, for plugins (`attncheck run --plugin`), which must not carry
# a copy of the libraries.
add_library(attncheck_headers INTERFACE)
target_include_directories(attncheck_headers INTERFACE $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                                       $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}>
                                                       $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
                                                       $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/attncheck>)
set_target_properties(attncheck_headers PROPERTIES EXPORT_NAME headers)
add_library(attncheck::headers ALIAS attncheck_headers)

install(TARGETS ${attncheck_installed_libs} attncheck_api attncheck_headers EXPORT attncheckTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS attncheck RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY engine kernels model oracle properties DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attncheck
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.cuh")
install(FILES include/attncheck/attncheck.hpp include/attncheck/plugin.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/attncheck)
install(EXPORT attncheckTargets NAMESPACE attncheck:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attncheck)
configure_package_config_file(cmake/attncheckConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/attncheckConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attncheck)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/attncheckConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/attncheckConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/attncheckConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/attncheck)
