package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ballot-kv/ballot/client"
	"github.com/ballot-kv/ballot/client/internal/kvtest"
)

func Example() {
	replica, err := kvtest.New() // stands in for a Ballot cluster
	if err != nil {
		fmt.Println(err)
		return
	}
	defer replica.Close()

	c, err := client.New(client.Config{
		Endpoints: []string{replica.Addr()},
		Timeout:   2 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Put(ctx, "colour", []byte("blue")); err != nil {
		fmt.Println(err)
		return
	}
	v, err := c.Get(ctx, "colour")
	fmt.Printf("%s %v\n", v, err)

	res, err := c.Delete(ctx, "colour")
	fmt.Println(res.Existed, err)

	_, err = c.Get(ctx, "colour")
	fmt.Println(errors.Is(err, client.ErrNotFound), err)
	// Output:
	// blue <nil>
	// true <nil>
	// true get "colour": not found
}
