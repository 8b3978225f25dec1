"""The Go-template subset: what Docker users type for --format and inspect -f gives Go's text."""

import pytest

from overlaykit.cli.gotemplate import parse, render
from overlaykit.cli.govalues import NilList, NilMap, Struct, TemplateError

CONTAINER = {
    "Id": "f00d" * 16, "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0},
    "Config": {"Labels": {"app": "web", "tier": "front end"}, "Env": ["A=1", "B=2"],
               "Cmd": ["sh", "-c", "echo <hi> & bye"], "Entrypoint": None},
    "Mounts": [{"Type": "bind", "Source": "/srv", "Destination": "/data"},
               {"Type": "volume", "Source": "/v/_data", "Destination": "/cache"}],
}


@pytest.mark.parametrize("template, expected", [
    ("{{.State.Pid}}", "4242"),
    ("{{.State.Running}}", "true"),
    ("{{.Name}}", "/web"),
    ("{{json .State}}", '{"Status":"running","Running":true,"Pid":4242,"ExitCode":0}'),
    ("{{json .Config.Cmd}}", '["sh","-c","echo \\u003chi\\u003e \\u0026 bye"]'),
    ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/srv:/data /v/_data:/cache "),
    ('{{index .Config.Labels "tier"}}', "front end"),
    ('{{index .Config.Labels "missing"}}', ""),
    ("{{.Config.Labels.app}}", "web"),
    ("{{.Config.Labels}}", "map[app:web tier:front end]"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.NoSuchKey}}", "<no value>"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ('{{split "a:b:c" ":"}}', "[a b c]"),
    ("{{upper .State.Status}} {{.State.Status | lower}} {{title \"up and away\"}}", "RUNNING running Up And Away"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.ExitCode 1}}one{{else if eq .State.ExitCode 0}}zero{{else}}many{{end}}", "zero"),
    ('{{if eq .Name "/db" "/web"}}match{{end}}', "match"),
    ("{{if and .State.Running (gt .State.Pid 1)}}ok{{end}}", "ok"),
    ("{{if not .Config.Entrypoint}}none{{end}}", "none"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/4242"),
    ("{{with .Config.Entrypoint}}set{{else}}unset{{end}}", "unset"),
    ("{{range .Config.Entrypoint}}x{{else}}empty{{end}}", "empty"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "app=web;tier=front end;"),
    ("{{range $i, $m := .Mounts}}{{if $i}},{{end}}{{$m.Type}}{{end}}", "bind,volume"),
    ("{{$n := .Name}}{{range .Mounts}}{{$n}}{{end}}", "/web/web"),
    ("{{len .Mounts}} {{(index .Mounts 1).Destination}}", "2 /cache"),
    ('{{printf "%-6s|%5d|%q|%v" .State.Status .State.Pid "x" .Config.Env}}', 'running| 4242|"x"|[A=1 B=2]'),
    ("a {{- /* a comment */ -}} b", "ab"),
    ("a\n  {{- .State.Pid}}\n", "a4242\n"),
    ("{{`raw {{ }}`}}", "raw {{ }}"),
    ('{{"}}"}}', "}}"),
    ("{{slice .Name 1}}", "web"),
    ("{{print 1 2 \"a\" 3}}", "1 2a3"),
    ("{{.}}", "map[Config:map[Cmd:[sh -c echo <hi> & bye] Entrypoint:<nil> Env:[A=1 B=2] "
             "Labels:map[app:web tier:front end]] Id:" + "f00d" * 16 + " Mounts:[map[Destination:/data "
             "Source:/srv Type:bind] map[Destination:/cache Source:/v/_data Type:volume]] Name:/web "
             "State:map[ExitCode:0 Pid:4242 Running:true Status:running]]"),
    ("{{1.5}} {{100000000.0}} {{0.00001}} {{true}} {{nil}}", "1.5 100000000 1e-05 true <nil>"),
])
def test_renders_like_go(template, expected):
    assert render(template, CONTAINER) == expected


def test_a_struct_method_takes_arguments_and_pipes():
    ctx = Struct({"ID": "abc", "Label": lambda key: {"app": "web"}.get(key, "")})
    assert render('{{.ID}} {{.Label "app"}} {{"app" | .Label}}', ctx) == "abc web web"


def test_a_struct_refuses_an_unknown_field_as_go_does():
    with pytest.raises(TemplateError, match="can't evaluate field Nope in type containerContext"):
        render("{{.Nope}}", Struct({"ID": "abc"}, "containerContext"))


def test_a_struct_prints_its_values_in_order_and_a_context_marshals_as_a_sorted_map():
    state = Struct({"Status": "exited", "Running": False, "Pid": 0, "Error": "", "Health": None})
    assert render("{{.}}", state) == "{exited false 0  <nil>}"
    assert render("{{json .}}", state) == '{"Status":"exited","Running":false,"Pid":0,"Error":"","Health":null}'
    ctx = Struct({"Names": "web", "ID": "abc", "Size": lambda: "0B", "Label": lambda key: ""},
                 "*formatter.ContainerContext", json_as_map=True)
    assert render("{{json .}}", ctx) == '{"ID":"abc","Names":"web","Size":"0B"}'
    assert render("{{.Size}}", ctx) == "0B"


def test_a_nil_slice_or_map_prints_empty_and_marshals_to_null():
    data = {"Entrypoint": NilList(), "Labels": NilMap()}
    assert render("{{.Entrypoint}} {{.Labels}} {{json .Entrypoint}} {{json .}}", data) == \
        '[] map[] null {"Entrypoint":null,"Labels":null}'
    assert render('{{index .Labels "k"}}|{{len .Entrypoint}}|{{range .Entrypoint}}x{{else}}none{{end}}', data) == "|0|none"


def test_a_missing_map_key_is_no_value_by_field_and_empty_by_index():
    assert render("{{.Config.Labels.nope}}|{{index .Config.Labels \"nope\"}}", CONTAINER) == "<no value>|"


@pytest.mark.parametrize("template, message", [
    ('{{template "x"}}', "{{template}} is not supported by overlaykit's Go templates"),
    ("{{define \"x\"}}{{end}}", "{{define}} is not supported by overlaykit's Go templates"),
    ("{{range .Mounts}}{{break}}{{end}}", "{{break}} is not supported by overlaykit's Go templates"),
    ("{{html .Name}}", 'function "html" is not supported by overlaykit\'s Go templates'),
    ("{{nosuch .Name}}", 'function "nosuch" not defined'),
    ("{{.Name", "unclosed action"),
    ("{{if .Name}}x", "unexpected EOF: {{if}} has no {{end}}"),
    ("x{{end}}", "unexpected {{end}}"),
    ("{{if 1}}{{else}}{{else}}{{end}}", "unexpected {{else}}"),
    ("{{/* open", "unclosed comment"),
    ("{{.Name | 3}}", "non executable command in pipeline stage"),
    ("{{.Name ! }}", "unexpected '!'"),
])
def test_what_is_not_supported_or_wrong_is_refused_at_parse_time(template, message):
    with pytest.raises(TemplateError) as e:
        parse(template)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("template, message", [
    ("{{index .Mounts 5}}", "error calling index: index out of range: 5"),
    ('{{lt .Name 3}}', "error calling lt: incompatible types for comparison"),
    ("{{.Name 1}}", "can't give argument to non-function .Name"),
    ("{{$nope}}", "undefined variable: $nope"),
    ("{{range .State.Pid}}{{end}}", None),  # Go 1.22 ranges over an int
    ("{{range .Name}}{{end}}", "range can't iterate over /web"),
    ("{{.State.Pid.Deeper}}", "can't evaluate field Deeper in type int"),
])
def test_errors_while_running_are_one_line(template, message):
    if message is None:
        assert render(template, CONTAINER) == ""
        return
    with pytest.raises(TemplateError) as e:
        render(template, CONTAINER)
    assert message in str(e.value)
