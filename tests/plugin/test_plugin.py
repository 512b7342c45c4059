"""The pytest plugin, driven in a subprocess with pytester: options, errors, markers, reports."""

import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["indmlops.plugin"]\n'


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_x="""
        def test_profile(profile, indmlops_options):
            print("PROFILE", profile, indmlops_options["target"])
    """)
    return pytester


def test_invalid_target_from_cli_is_a_usage_error_naming_cli(project):
    result = project.runpytest_subprocess("--target", "kid")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--target 'kid' from CLI: expected one of local, kind, kubeconfig, cluster*"])


def test_invalid_profile_from_environment_names_the_variable(project, monkeypatch):
    monkeypatch.setenv("INDMLOPS_PROFILE", "nightly")
    result = project.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--profile 'nightly' from environment INDMLOPS_PROFILE: expected one of quick, full*"])


def test_ini_value_used_when_no_cli_or_env(project, monkeypatch):
    monkeypatch.delenv("INDMLOPS_PROFILE", raising=False)
    project.makeini("[pytest]\nindmlops_profile = full\n")
    result = project.runpytest_subprocess("-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*profile=full (ini indmlops_profile)*", "*PROFILE full local*"])


def test_cli_beats_environment(project, monkeypatch):
    monkeypatch.setenv("INDMLOPS_PROFILE", "full")
    result = project.runpytest_subprocess("-s", "--profile", "quick")
    result.stdout.fnmatch_lines(["*profile=quick (CLI)*", "*PROFILE quick local*"])


def test_kind_target_stops_clearly_without_kind(project, tmp_path, monkeypatch):
    """--target kind runs the lifecycle (tests/unit/test_kind_*.py); without kind it says how to get it."""
    project.makepyfile(test_t="""
        def test_uses_target(target):
            pass
    """)
    monkeypatch.setenv("PATH", str(tmp_path))  # no kind here
    result = project.runpytest_subprocess("--target", "kind", "--kubeconfig", str(tmp_path / "kc"), "test_t.py")
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*target=kind (CLI)*", "*Kubernetes context kind-indmlops of kubeconfig*",
                                 "*the kind target could not be set up: kind is not installed*kind-linux-amd64*"])


def test_kubeconfig_target_at_kinds_context_stops_clearly_without_a_cluster(project, tmp_path):
    project.makepyfile(test_t="""
        def test_uses_target(target):
            pass
    """)
    missing = tmp_path / "no-kubeconfig"
    result = project.runpytest_subprocess("--target", "kubeconfig", "--context", "kind-indmlops",
                                          "--kubeconfig", str(missing), "test_t.py")
    assert result.ret == 3
    result.stdout.fnmatch_lines([f"*the kubeconfig target could not be set up: no cluster at context "
                                 f"'kind-indmlops' in kubeconfig {missing}*kind create cluster*"])


def _fake_kind(httpserver, tmp_path):
    """A fake API server with one mlflow pod, and a kubeconfig whose kind-indmlops context points at it."""
    pod = {"metadata": {"name": "mlflow-a", "namespace": "it-core", "uid": "uid-a"},
           "spec": {"containers": [{"name": "mlflow"}]}, "status": {"phase": "Running"}}
    httpserver.expect_request("/api/v1/namespaces/it-core/pods").respond_with_json(
        {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [pod]})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{httpserver.url_for('/').rstrip('/')}"}}}}]
users: [{{name: fake, user: {{token: t}}}}]
contexts: [{{name: kind-indmlops, context: {{cluster: fake, user: fake}}}}, {{name: other, context: {{cluster: x}}}}]
current-context: other
""")
    return kubeconfig


def test_kubeconfig_target_reaches_the_cluster_of_its_kubeconfig(project, httpserver, tmp_path):
    """The `target` fixture on --target kubeconfig is a KubernetesTarget at the context given (a fake API here)."""
    kubeconfig = _fake_kind(httpserver, tmp_path)
    project.makepyfile(test_t="""
        def test_uses_target(target):
            print("TARGET", type(target).__name__, target.name, target.identity("mlflow"))
    """)
    result = project.runpytest_subprocess("-s", "--target", "kubeconfig", "--context", "kind-indmlops",
                                          "--kubeconfig", str(kubeconfig), "test_t.py")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*TARGET KubernetesTarget kubeconfig uid-a*"])


def test_failure_on_kubernetes_keeps_pod_evidence_and_the_command_to_reproduce(project, httpserver, tmp_path):
    kubeconfig = _fake_kind(httpserver, tmp_path)
    project.makepyfile(test_t="""
        def test_fails(target):
            assert target.identity("mlflow") == "another-uid"
    """)
    result = project.runpytest_subprocess("--target", "kubeconfig", "--context", "kind-indmlops",
                                          "--kubeconfig", str(kubeconfig), "test_t.py")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*indmlops evidence*", "*kept under reports*test_t.py_test_fails*"])
    out = next((project.path / "reports").glob("*test_t.py_test_fails"))
    assert (out / "mlflow.pods.txt").read_text() == "pod it-core/mlflow-a uid=uid-a, phase=Running\n"
    assert (out / "events.it-core.txt").read_text().startswith("unavailable: list events in namespace it-core")
    reproduce = (out / "reproduce.sh").read_text()
    assert f"kubectl --kubeconfig {kubeconfig} --context kind-indmlops get pods,events -A -o wide" in \
        (out / "cluster.sh").read_text()
    assert f"test_t.py::test_fails --target kubeconfig --kubeconfig {kubeconfig} --context kind-indmlops" in reproduce


def test_kubeconfig_target_uses_the_given_context_and_needs_no_cluster_for_tests_without_target(project, tmp_path):
    result = project.runpytest_subprocess("-s", "--target", "kubeconfig", "--context", "prod-east",
                                          "--kubeconfig", str(tmp_path / "kc"))
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*Kubernetes context prod-east of kubeconfig*kc*", "*PROFILE quick kubeconfig*"])


def test_junit_and_self_contained_html_written_to_reports_dir(project):
    result = project.runpytest_subprocess("--reports-dir", "out")
    assert result.ret == 0
    assert (project.path / "out" / "junit.xml").read_text().count("<testcase") == 1
    html = (project.path / "out" / "report.html").read_text()
    assert "test_profile" in html and not (project.path / "out" / "assets").exists()


def test_marker_overrides_session_option(project):
    project.makepyfile(test_m="""
        import pytest
        from indmlops.plugin import option

        @pytest.mark.indmlops(profile="full")
        def test_m(request):
            assert option(request.config, "profile", request.node) == "full"
            assert option(request.config, "profile") == "quick"
    """)
    result = project.runpytest_subprocess("test_m.py")
    assert result.ret == 0, result.stdout.str()


def test_unregistered_marker_rejected_by_strict_markers(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(test_s="""
        import pytest
        @pytest.mark.smokey
        def test_s(): pass
    """)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'smokey' not found in `markers` configuration option*"])


def test_check_skipped_with_target_reason_when_target_cannot_do_it(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_p="""
        from indmlops.errors import NotSupportedByTarget

        def test_probe():
            raise NotSupportedByTarget("local", "live isolation probing", "one shared loopback network")
    """)
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*live isolation probing is not supported by the local target: one shared "
                                 "loopback network (choose a target that supports it with --target)*"])


def test_disruptive_tests_run_last(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    chaos: disruptive\n")
    pytester.makepyfile(test_o="""
        import pytest

        @pytest.mark.chaos
        def test_a_kill(): pass

        def test_b_calm(): pass
    """)
    result = pytester.runpytest_subprocess("-v")
    result.stdout.fnmatch_lines(["*test_b_calm PASSED*", "*test_a_kill PASSED*"])


def test_every_option_is_registered_as_a_flag_and_an_ini_key(project):
    from indmlops.plugin.options import OPTIONS

    out = project.runpytest("--help").stdout.str()
    missing = [n for opt in OPTIONS.values() for n in (opt.cli, opt.ini) if n not in out]
    assert missing == [], f"not in `pytest --help`: {missing}"
