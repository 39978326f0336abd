package matrix

import (
	"bytes"
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// replicaColors tell the cluster sizes apart in the charts.
var replicaColors = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// throughputChart is a grid of panels, one per operation (rows) and value size
// (columns), each with ops/s against clients for every cluster size, and etcd's
// figures as crosses where the reference has them.
func (m *Matrix) throughputChart() ([]byte, error) {
	return m.grid("ops/s", func(r Result) float64 { return r.OpsPerSec }, func(op string, value int) plotter.XYs {
		var xys plotter.XYs
		if value != 100 {
			return nil
		}
		for _, f := range etcdReference {
			if f.version == "3.4.23" && f.op == op && slices.Contains(m.S.Clients, f.clients) {
				xys = append(xys, plotter.XY{X: float64(f.clients), Y: f.opsPerS})
			}
		}
		return xys
	}, "etcd 3.4.23, 3 members")
}

// cpuChart is the same grid with the servers' CPU time per operation.
func (m *Matrix) cpuChart() ([]byte, error) {
	return m.grid(m.Sys.Node+" CPU µs per op (all "+m.Sys.Node+"s)", func(r Result) float64 { return r.ServerCPUUsPerOp },
		func(op string, value int) plotter.XYs {
			if op == "put" && value == 100 && slices.Contains(m.S.Clients, 64) {
				return plotter.XYs{{X: 64, Y: 210}}
			}
			return nil
		}, "etcd 3.4.23, 3 members")
}

func (m *Matrix) grid(ylabel string, y func(Result) float64, ref func(op string, value int) plotter.XYs, refName string) ([]byte, error) {
	rows, cols := len(m.S.Ops), len(m.S.Values)
	plots := make([][]*plot.Plot, rows)
	ticks := plot.ConstantTicks{}
	for _, c := range m.S.Clients {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: fmt.Sprint(c)})
	}
	for i, op := range m.S.Ops {
		plots[i] = make([]*plot.Plot, cols)
		for j, v := range m.S.Values {
			p := plot.New()
			p.Title.Text = fmt.Sprintf("%s, %s values", opTitle(op), sizeText(v))
			p.X.Label.Text = "clients (log scale)"
			p.Y.Label.Text = ylabel
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = ticks
			p.X.Min, p.X.Max = float64(m.S.Clients[0])/1.5, float64(m.S.Clients[len(m.S.Clients)-1])*1.5
			for _, c := range m.S.Clients {
				p.X.Min = min(p.X.Min, float64(c)/1.5)
				p.X.Max = max(p.X.Max, float64(c)*1.5)
			}
			p.Y.Min = 0
			p.Y.Tick.Marker = wholeTicks{}
			p.Legend.Top = true
			p.Legend.Left = true
			p.Add(plotter.NewGrid())
			for k, n := range m.S.Replicas {
				var xys plotter.XYs
				for _, c := range m.S.Clients {
					if r, ok := m.find(Cell{Replicas: n, Clients: c, ValueSize: v, Op: op}); ok && r.Error == "" {
						xys = append(xys, plotter.XY{X: float64(c), Y: y(r)})
					}
				}
				if len(xys) == 0 {
					continue
				}
				line, points, err := plotter.NewLinePoints(xys)
				if err != nil {
					return nil, err
				}
				col := replicaColors[k%len(replicaColors)]
				line.LineStyle.Color, line.LineStyle.Width = col, vg.Points(1.5)
				points.GlyphStyle.Color, points.GlyphStyle.Shape = col, draw.CircleGlyph{}
				p.Add(line, points)
				p.Legend.Add(m.Sys.Name+", "+m.Sys.nodes(n), line, points)
			}
			if xys := ref(op, v); len(xys) > 0 {
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return nil, err
				}
				sc.GlyphStyle.Shape = draw.CrossGlyph{}
				sc.GlyphStyle.Radius = vg.Points(4)
				sc.GlyphStyle.Color = color.Black
				p.Add(sc)
				p.Legend.Add(refName, sc)
			}
			plots[i][j] = p
		}
	}
	width := vg.Length(cols) * 6 * vg.Inch
	height := vg.Length(rows) * 4 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: 8 * vg.Millimeter, PadY: 8 * vg.Millimeter,
		PadTop: 4 * vg.Millimeter, PadBottom: 2 * vg.Millimeter,
		PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter,
	}, dc)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(canvases[i][j])
		}
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// wholeTicks are the default ticks labelled as whole numbers with thousands
// separators ("25,000", not "25000.00").
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = thousands(ticks[i].Value)
		}
	}
	return ticks
}
